"""`ftc eval` and [eval] after training: load the model once, score every asked benchmark, then predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftc.runtime.benchmark.model import Scored, load_scored
from ftc.runtime.benchmark.multiple_choice import model_lm, score_multiple_choice
from ftc.runtime.benchmark.predict import predict


def evaluate(
    target: str | Path,
    tasks: list[str],
    data_dir: str | Path | None,
    shots: int,
    chat_template: bool,
    checkpoint: str | None = None,
    predict_file: str | Path | None = None,
    predict_format: str = "alpaca",
    out_dir: Path | None = None,
    max_new_tokens: int = 128,
    limit: int | None = None,
) -> dict[str, Any]:
    """`data_dir` is one benchmark's folder when one task is asked, else a folder of one folder per task."""
    scored = load_scored(target, checkpoint)
    data_dirs = {task: Path(data_dir) if len(tasks) == 1 else Path(data_dir) / task for task in tasks} if tasks else {}
    results = score_benchmarks(scored, data_dirs, shots, chat_template, limit)
    if predict_file is not None:
        where = out_dir or scored.run_dir or Path.cwd()
        results["predict"] = predict(
            scored.model, scored.tokenizer, predict_file, predict_format, where, max_new_tokens, chat_template, limit
        )
    return results


def score_benchmarks(
    scored: Scored, data_dirs: dict[str, Path], shots: int, chat_template: bool, limit: int | None = None
) -> dict[str, Any]:
    # Without a template in the tokenizer (a base model) the plain prompt is the only one there is.
    templated = chat_template and bool(scored.tokenizer.chat_template)
    lm = model_lm(scored.model, scored.tokenizer) if data_dirs else None
    return {
        "model": str(scored.source),
        "benchmarks": {
            task: score_multiple_choice(lm, task, folder, shots, templated, limit) for task, folder in data_dirs.items()
        },
    }


def benchmarks_after_training(run_dir: Path, tasks: list[str], data_dir: str, shots: int, chat_template: bool) -> dict:
    """[eval]: the finished run's result on each task, read from <data_dir>/<task>."""
    scored = load_scored(run_dir)
    results = score_benchmarks(scored, {task: Path(data_dir) / task for task in tasks}, shots, chat_template)
    return results["benchmarks"]
