"""The model `ftc eval` scores: a run folder's result (an adapter merged into its base) or a model folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftc.errors import RuntimeUserError


@dataclass
class Scored:
    model: Any
    tokenizer: Any
    source: Path  # the folder the weights came from (the run's adapter/ or model/, or a checkpoint)
    run_dir: Path | None  # the run folder, when it is one


def load_scored(target: str | Path, checkpoint: str | None = None) -> Scored:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftc.runs.folder import load_run_folder
    from ftc.runtime.export import load_trained, trained_folder
    from ftc.stages import STAGES

    path = Path(target).expanduser()
    if (path / "spec.toml").is_file():
        folder = load_run_folder(path)
        if STAGES[folder.spec.train.stage].score_head:
            raise RuntimeUserError(
                "a reward model scores replies with its value head; the benchmarks need a language-model head",
                "evaluate a policy run (sft, dpo, ...) instead",
            )
        trained = trained_folder(folder, checkpoint)
        return Scored(
            load_trained(folder, trained).eval(), AutoTokenizer.from_pretrained(trained), trained, folder.path
        )
    if checkpoint is not None:
        raise RuntimeUserError(f"--checkpoint is for a run folder; {path} is not one", "remove --checkpoint")
    if not (path / "config.json").is_file():
        raise RuntimeUserError(
            f"{target} is neither a run folder (spec.toml) nor a model folder (config.json)",
            "pass a run folder written by `ftc launch`, or a local model folder (`ftc export` writes one)",
        )
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return Scored(model, AutoTokenizer.from_pretrained(path), path, None)
