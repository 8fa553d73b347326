"""`python -m ftc.runtime RUN_DIR` on run folders written by hand: its user errors.

A whole training run goes through `ftc launch` in tests/test_end_to_end.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ftc.quickstart.tiny import write_tiny_alpaca
from tests.tiny_runs import cpu_plan, tiny_spec


def run_runtime(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftc.runtime", str(run_dir)], capture_output=True, text=True, timeout=300
    )


def test_a_missing_dataset_exits_2_with_a_hint_and_no_traceback(tmp_path, tiny_model_dir, run_folder):
    run_dir = run_folder(tiny_spec(tmp_path / "run", tiny_model_dir, tmp_path / "data" / "absent.json"))
    result = run_runtime(run_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("error: dataset ") and "not found" in result.stderr
    assert "(hint: " in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_a_plan_for_an_absent_accelerator_exits_2_before_loading_anything(tmp_path, tiny_model_dir, run_folder):
    import json
    from dataclasses import replace

    from ftc.compiler.plan import Decision

    data = write_tiny_alpaca(tmp_path / "tiny.json", n=8)
    run_dir = run_folder(tiny_spec(tmp_path / "run", tiny_model_dir, data))
    npu_plan = replace(cpu_plan("bf16"), backend=Decision("npu", "planned for Ascend"))
    (run_dir / "plan.json").write_text(json.dumps(npu_plan.to_dict()), encoding="utf-8")
    result = run_runtime(run_dir)
    assert result.returncode == 2
    assert "error: the plan is for Ascend NPUs" in result.stderr and "torch_npu is not installed" in result.stderr
    assert "Traceback" not in result.stderr and "data:" not in result.stdout  # nothing was loaded


def test_a_folder_without_a_spec_exits_2(tmp_path):
    result = run_runtime(tmp_path)
    assert result.returncode == 2 and "spec.toml not found" in result.stderr and "Traceback" not in result.stderr
