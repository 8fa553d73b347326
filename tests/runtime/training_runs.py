"""Short training runs in this process, for the method and stage tests: a run folder, trained, its metrics."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import tomli_w

from ftc.compiler.plan import Plan
from ftc.runs.folder import RunFolder, load_run_folder
from ftc.runtime.stages import STAGES
from ftc.spec.models import Spec
from tests.runtime.run_folders import cpu_plan


def tiny_run_spec(model_dir: Path, data_path: Path, run_dir: Path, data_format: str = "alpaca", **train: Any) -> dict:
    return {
        "model": {"name_or_path": str(model_dir), "template": "llama3"},
        "data": {"datasets": [{"path": str(data_path), "format": data_format}], "cutoff_len": 128},
        "train": {
            "stage": "sft",
            "method": "lora",
            "global_batch_size": 8,
            "learning_rate": 1e-2,
            "max_steps": 12,
            "seed": 0,
            "logging_steps": 1,
            "save_steps": 1000,
            **train,
        },
        "lora": {"rank": 8, "alpha": 16, "target": "all"},
        "output": {"dir": str(run_dir)},
    }


def write_spec_run(run_dir: Path, spec: dict, plan: Plan | None = None) -> RunFolder:
    Spec.model_validate(spec)  # the runtime is only ever handed valid specs
    run_dir.mkdir(parents=True)
    (run_dir / "spec.toml").write_text(tomli_w.dumps(spec), encoding="utf-8")
    (run_dir / "plan.json").write_text(json.dumps((plan or cpu_plan()).to_dict()), encoding="utf-8")
    return load_run_folder(run_dir)


def train_in_process(folder: RunFolder) -> dict[str, Any]:
    """Run the folder's stage as `python -m ftc.runtime` would, here; returns metrics.json."""
    from ftc.runtime.distributed.process_group import seed_all

    seed_all(folder.spec.train.seed)  # as the runtime does before any model exists: LoRA init draws from it
    importlib.import_module(STAGES[folder.spec.train.stage].module).run(folder)
    return json.loads(folder.metrics.read_text(encoding="utf-8"))
