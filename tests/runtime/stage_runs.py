"""Train a stage in-process on the tiny model, from a run folder written as a target would, for the stage tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.runtime.run_folders import cpu_plan, write_run_folder

# A few steps of the tiny model: enough for a preference stage to move its margins, a second or two on a CPU.
QUICK = {
    "global_batch_size": 8,
    "learning_rate": 5e-3,
    "max_steps": 12,
    "logging_steps": 1,
    "save_steps": 12,
    "warmup_ratio": 0.0,
}


def train_stage(
    run_dir: Path,
    model_dir: Path,
    data_path: Path,
    data_format: str,
    sections: dict | None = None,
    precision: str = "fp32",
    **train: Any,
) -> dict[str, Any]:
    """Run the stage through the runtime's own entry (not a subprocess); returns metrics.json."""
    from ftc.runtime.__main__ import run

    plan = cpu_plan(precision)  # micro-batch 4 × 2 accumulation steps
    write_run_folder(run_dir, model_dir, data_path, data_format, sections, plan, **{**QUICK, **train})
    run(str(run_dir))
    return json.loads((run_dir / "metrics.json").read_text())


def series(metrics: dict[str, Any], name: str) -> list[float]:
    return [entry[name] for entry in metrics["log"] if name in entry]
