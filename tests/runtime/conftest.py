"""The tiny model trained in this process, through the runtime's own entry, for the stage and method tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_runs import QUICK, cpu_plan, tiny_spec


@pytest.fixture(scope="session")
def train_in_process():
    """`train_in_process(run_dir)`: run the folder as `python -m ftc.runtime RUN_DIR` would, here; its metrics.json."""

    def train(run_dir: Path | str) -> dict[str, Any]:
        from ftc.runtime.__main__ import run

        run(str(run_dir))
        return json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))

    return train


@pytest.fixture(scope="session")
def train_stage(tiny_model_dir, run_folder, train_in_process):
    """`train_stage(run_dir, data, format, sections, precision, **train)`: a QUICK run of the tiny model, written
    and trained; its metrics.json. `train` keys (stage, method, steps, …) go over QUICK's."""

    def write_and_train(
        run_dir: Path,
        data_path: Path,
        data_format: str,
        sections: dict[str, Any] | None = None,
        precision: str = "fp32",
        **train: Any,
    ) -> dict[str, Any]:
        spec = tiny_spec(run_dir, tiny_model_dir, data_path, data_format, preset=QUICK, sections=sections, **train)
        return train_in_process(run_folder(spec, cpu_plan(precision)))

    return write_and_train
