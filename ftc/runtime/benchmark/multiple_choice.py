"""MMLU, CMMLU and C-Eval from local files, scored by lm-evaluation-harness.

Each subject becomes one lm-eval task configuration over the subject's CSV files (the `csv` builder of
`datasets`, so nothing is fetched), asked as the benchmark's own harness asks it: the description line, the
first `shots` dev questions with their answers, then the question; the answer is the letter whose
continuation (" A" … " D" after the cue; "A" … "D" as the assistant's reply under a chat template) the model
finds most likely. Overall accuracy counts every question once (subjects weigh by their size).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from ftc.benchmarks import BENCHMARKS, FEWSHOT_SPLIT, LETTERS, Benchmark
from ftc.errors import RuntimeUserError

_TASK_PREFIX = "ftc"


def subjects(benchmark: Benchmark, data_dir: Path) -> list[str]:
    """The subjects with a file in the scored split, in name order; each must also have its dev file."""
    scored = data_dir / benchmark.file_pattern.format(split=benchmark.scored_split, subject="*")
    prefix, _, suffix = scored.name.partition("*")
    names = sorted(path.name[len(prefix) : len(path.name) - len(suffix)] for path in scored.parent.glob(scored.name))
    if not names:
        raise RuntimeUserError(
            f"no {benchmark.name} questions in {data_dir}: nothing matches {scored.relative_to(data_dir)}",
            f"point --data at the folder holding {benchmark.name}'s split folders ({benchmark.summary})",
        )
    return names


def task_configs(benchmark: Benchmark, data_dir: Path, cache_dir: Path) -> dict[str, dict[str, Any]]:
    """lm-eval task configurations by subject; `cache_dir` keeps the prepared CSVs out of the user's cache."""
    configs = {}
    for subject in subjects(benchmark, data_dir):
        files = {}
        for split in (benchmark.scored_split, FEWSHOT_SPLIT):
            path = data_dir / benchmark.file_pattern.format(split=split, subject=subject)
            if not path.is_file():
                raise RuntimeUserError(f"{path} not found", f"each {benchmark.name} subject needs its {split} file")
            files[split] = str(path)
        read = {"data_files": files, "cache_dir": str(cache_dir)}
        if benchmark.columns is not None:
            read |= {"column_names": list(benchmark.columns), "header": None}
        else:  # only the columns asked about: C-Eval's dev files carry an explanation its val files lack
            read["usecols"] = [benchmark.question, *LETTERS, benchmark.answer]
        options = "\n".join(f"{letter}. {{{{{letter}}}}}" for letter in LETTERS)
        configs[subject] = {
            "task": f"{_TASK_PREFIX}_{benchmark.name}_{subject}",
            "dataset_path": "csv",
            "dataset_kwargs": read,
            "test_split": benchmark.scored_split,
            "fewshot_split": FEWSHOT_SPLIT,
            "fewshot_config": {"sampler": "first_n"},
            "output_type": "multiple_choice",
            "description": benchmark.description.format(subject=subject.replace("_", " ")),
            "doc_to_text": f"{{{{{benchmark.question}.strip()}}}}\n{options}\n{benchmark.answer_cue}",
            "doc_to_choice": list(LETTERS),
            "doc_to_target": f"{{{{{list(LETTERS)}.index({benchmark.answer}.strip())}}}}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        }
    return configs


def score_multiple_choice(
    lm: Any, task: str, data_dir: str | Path, shots: int, chat_template: bool, limit: int | None = None
) -> dict[str, Any]:
    """Per-subject and overall accuracy of `lm` (an lm-eval LM) on one benchmark's local files."""
    import lm_eval

    benchmark = BENCHMARKS[task]
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise RuntimeUserError(f"{data_dir} is not a folder", f"point it at {benchmark.name}'s files")
    import datasets

    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-task notes would bury the table
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="ftc-eval-") as cache_dir:
        configs = task_configs(benchmark, data_dir, Path(cache_dir))
        outcome = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(configs.values()),
            num_fewshot=shots,
            limit=limit,
            bootstrap_iters=0,
            log_samples=True,
            apply_chat_template=chat_template,
            fewshot_as_multiturn=chat_template,
        )
    per_subject = {}
    for subject, config in configs.items():
        samples = outcome["samples"][config["task"]]
        correct = sum(int(sample["acc"]) for sample in samples)
        per_subject[subject] = {"accuracy": correct / len(samples), "correct": correct, "questions": len(samples)}
    correct = sum(entry["correct"] for entry in per_subject.values())
    questions = sum(entry["questions"] for entry in per_subject.values())
    return {
        "task": task,
        "split": benchmark.scored_split,
        "shots": shots,
        "chat_template": chat_template,
        "engine": f"lm-eval {_version('lm_eval')}",
        "accuracy": correct / questions,
        "correct": correct,
        "questions": questions,
        "subjects": per_subject,
    }


def model_lm(model: Any, tokenizer: Any, batch_size: int = 8) -> Any:
    """lm-eval's Hugging Face model around an already loaded model, on the device it sits on."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
