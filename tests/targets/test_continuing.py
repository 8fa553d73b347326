"""`ftc launch --resume`: an existing run folder with a checkpoint starts again; a changed run does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ftc.runs.seal import write_seal
from tests.specs import VALID, replace


def launch(spec: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ftc", "launch", str(spec), "-H", "cpu", "--dry-run", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_resume_needs_a_checkpoint_refuses_a_changed_schedule_and_keeps_the_checkpoints(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(VALID)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alpaca_en.json").write_text("[]")
    run_dir = tmp_path / "runs" / "quickstart"

    absent = launch(spec, "--resume")
    assert absent.returncode == 1 and "holds no run to resume" in absent.stderr
    assert launch(spec).returncode == 0
    no_checkpoint = launch(spec, "--resume")
    assert no_checkpoint.returncode == 1 and "has no complete checkpoint yet" in no_checkpoint.stderr

    checkpoint = run_dir / "checkpoints" / "checkpoint-30"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 30}))
    write_seal(checkpoint, 30)  # whole: a folder without a seal would be one cut short
    (run_dir / "metrics.json").write_text('{"log": []}')

    spec.write_text(replace(VALID, "max_steps = 60", "max_steps = 90"))
    changed = launch(spec, "--resume", "--target", "slurm")
    assert changed.returncode == 1
    assert "cannot resume" in changed.stderr and "train.max_steps 60 → 90" in changed.stderr
    assert "Traceback" not in changed.stderr

    spec.write_text(VALID)
    resumed = launch(spec, "--resume", "--target", "slurm")
    assert resumed.returncode == 0, resumed.stderr
    assert (checkpoint / "trainer_state.json").is_file() and (run_dir / "metrics.json").is_file()
    assert (run_dir / "job.sbatch").is_file() and (run_dir / "run.sh").is_file()  # the new target's script beside
