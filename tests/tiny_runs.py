"""A tiny model's run as plain values: the spec every test's run starts from, the CPU plan, a series of its metrics.

The `run_folder` fixture (tests/conftest.py) writes a run folder of such a spec; `train_in_process` and
`train_stage` (tests/runtime/conftest.py) train it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftc.compiler.plan import Decision, HardwareRef, Plan

# How a run steps, logs and saves: each test's spec starts from one of these, then sets what it tests.
# As a target would write a run: a warm-up and checkpoints kept; the tests that train it set their own steps.
CHECKPOINTING = {"max_steps": 50, "warmup_ratio": 0.05, "logging_steps": 5, "save_steps": 25, "save_total_limit": 2}
# A short run that logs every step and saves only its result: for the tests that read its loss or its output.
SHORT = {"max_steps": 12, "logging_steps": 1, "save_steps": 1000}
# A few steps of the tiny model: enough for a preference stage to move its margins, a second or two on a CPU.
QUICK = {
    **CHECKPOINTING,
    "learning_rate": 5e-3,
    "max_steps": 12,
    "logging_steps": 1,
    "save_steps": 12,
    "warmup_ratio": 0.0,
}


def tiny_spec(
    run_dir: Path,
    model_dir: Path,
    data_path: Path,
    data_format: str = "alpaca",
    *,
    preset: dict[str, Any] = CHECKPOINTING,
    # whole sections, added, replaced or (None) left out: {"preference": {"beta": 0.5}}, {"lora": None}
    sections: dict[str, Any] | None = None,
    **train: Any,
) -> dict[str, Any]:
    """A LoRA SFT run of `model_dir` on one dataset, as spec.toml's dict; `train` keys go over the preset's."""
    spec = {
        "model": {"name_or_path": str(model_dir), "template": "llama3"},
        "data": {"datasets": [{"path": str(data_path), "format": data_format}], "cutoff_len": 128},
        "train": {
            "stage": "sft",
            "method": "lora",
            "global_batch_size": 8,
            "learning_rate": 1e-2,
            "seed": 0,
            **preset,
            **train,
        },
        "lora": {"rank": 8, "alpha": 16, "target": "all"},
        "output": {"dir": str(run_dir)},
    }
    return {name: section for name, section in {**spec, **(sections or {})}.items() if section is not None}


def cpu_plan(precision: str = "fp32", loss_head: str = "model") -> Plan:
    """One CPU process: micro-batch 4 × 2 accumulation steps, the global batch of 8 the specs above ask for; the
    loss through the model's own head, as the planner chooses for the tiny model (sft: or trl's, "fused")."""

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
        loss_head=fixed(loss_head),
    )


def series(metrics: dict[str, Any], name: str) -> list[float]:
    """One logged value, step by step, from metrics.json's log (the steps that logged it)."""
    return [entry[name] for entry in metrics["log"] if name in entry]
