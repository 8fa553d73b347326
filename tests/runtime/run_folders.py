"""Run folders written by hand, as a target would write them, for the runtime tests."""

from __future__ import annotations

import json
from pathlib import Path

import tomli_w

from ftc.compiler.plan import Decision, HardwareRef, Plan
from ftc.spec.models import Spec


def cpu_plan(precision: str = "fp32") -> Plan:
    def fixed(value):
        return Decision(value, "fixed by the test")

    return Plan(
        hardware=HardwareRef("cpu"),
        backend=fixed("cpu"),
        precision=fixed(precision),
        strategy=fixed("single"),
        world_size=fixed(1),
        micro_batch_size=fixed(4),
        gradient_accumulation_steps=fixed(2),
        gradient_checkpointing=fixed(False),
    )


def write_run_folder(
    run_dir: Path,
    model_dir: Path,
    data_path: Path,
    data_format: str = "alpaca",
    sections: dict | None = None,  # more spec sections, e.g. {"preference": {"beta": 0.5}}
    plan: Plan | None = None,
    **train: object,
) -> Path:
    spec = {
        "model": {"name_or_path": str(model_dir), "template": "llama3"},
        "data": {"datasets": [{"path": str(data_path), "format": data_format}], "cutoff_len": 128},
        "train": {
            "stage": "sft",
            "method": "lora",
            "global_batch_size": 8,
            "learning_rate": 1e-2,
            "max_steps": 50,
            "seed": 0,
            "warmup_ratio": 0.05,
            "logging_steps": 5,
            "save_steps": 25,
            "save_total_limit": 2,
            **train,
        },
        "lora": {"rank": 8, "alpha": 16, "target": "all"},
        "output": {"dir": str(run_dir)},
    }
    spec.update(sections or {})
    Spec.model_validate(spec)  # the runtime is only ever handed valid specs
    run_dir.mkdir(parents=True)
    (run_dir / "spec.toml").write_text(tomli_w.dumps(spec), encoding="utf-8")
    (run_dir / "plan.json").write_text(json.dumps((plan or cpu_plan()).to_dict()), encoding="utf-8")
    return run_dir
