"""A run SIGKILLed at random points of its saves resumes from a whole checkpoint every time, and its loss
curve is the uninterrupted run's: the seal tells a cut checkpoint from a whole one, whatever was cut."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.checkpoints import checkpoint_folders
from ftc.runs.seal import is_sealed
from ftc.runtime.__main__ import run
from tests.tiny_runs import tiny_spec

STEPS, SAVE_STEPS = 16, 2
KILLS = 3
SEED = 2  # of the kill points: with it, some kills land inside a save and some after its seal
KILL_WINDOW_S = 0.5  # a kill lands this long after a checkpoint folder appears, at most

# The runtime as `python -m ftc.runtime` runs it, but each piece of a save takes a little longer, so that
# a kill at a random moment lands between its files as often as after them (a tiny model saves in ms).
SLOWED_SAVES = """
import sys, time
from transformers import Trainer, TrainerState

def slowed(write):
    def slow_write(*args, **kwargs):
        result = write(*args, **kwargs)
        time.sleep(0.08)
        return result
    return slow_write

for name in ("save_model", "_save_optimizer_and_scheduler", "_save_scaler", "_save_rng_state"):
    setattr(Trainer, name, slowed(getattr(Trainer, name)))
TrainerState.save_to_json = slowed(TrainerState.save_to_json)
from ftc.runtime.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def losses(run_dir: Path) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in json.loads((run_dir / "metrics.json").read_text())["log"]}


def newest_sealed(run_dir: Path) -> Path | None:
    sealed = [folder for _, folder in checkpoint_folders(run_dir / "checkpoints") if is_sealed(folder)]
    return sealed[-1] if sealed else None


def start(run_dir: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as output:
        return subprocess.Popen([sys.executable, "-c", SLOWED_SAVES, str(run_dir)], stdout=output, stderr=output)


def kill_during_save(run_dir: Path, log: Path, target: int, delay: float) -> None:
    """Start the run; once checkpoint-`target` appears, wait `delay` and SIGKILL it."""
    folder = run_dir / "checkpoints" / f"checkpoint-{target}"
    process = start(run_dir, log)
    deadline = time.monotonic() + 120
    while not folder.is_dir():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the checkpoint never appeared"
        time.sleep(0.002)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_runs_killed_while_saving_resume_from_whole_checkpoints_to_the_same_losses(
    tmp_path, tiny_model_dir, run_folder
):
    data = write_tiny_alpaca(tmp_path / "tiny.json", n=64, seed=0)
    settings = {"max_steps": STEPS, "logging_steps": 1, "save_steps": SAVE_STEPS, "save_total_limit": 2}
    straight = run_folder(tiny_spec(tmp_path / "straight", tiny_model_dir, data, **settings))
    run(str(straight))

    killed = run_folder(tiny_spec(tmp_path / "killed", tiny_model_dir, data, **settings))
    kill_points = random.Random(SEED)
    cut, resumed_from = [], []
    for kill in range(KILLS + 1):
        log = tmp_path / f"attempt-{kill}.log"
        expected = newest_sealed(killed)  # what this start must resume from, and the cut folders it must skip
        after = int(expected.name.split("-")[1]) if expected else 0
        unsealed = [step for step, folder in checkpoint_folders(killed / "checkpoints") if not is_sealed(folder)]
        if kill < KILLS:
            newest = max((step for step, _ in checkpoint_folders(killed / "checkpoints")), default=0)
            target = newest + SAVE_STEPS * kill_points.randint(1, 2)  # a save this start has not written yet
            kill_during_save(killed, log, target, kill_points.uniform(0, KILL_WINDOW_S))
            if not is_sealed(killed / "checkpoints" / f"checkpoint-{target}"):
                cut.append(target)
        else:
            finished = start(killed, log)
            assert finished.wait(timeout=300) == 0, log.read_text()[-3000:]
        output = log.read_text()
        assert "Traceback" not in output, output[-3000:]
        if expected is not None:
            assert f"resuming from {expected.name} (step" in output, output[-3000:]
            resumed_from.append(after)
        for step in (step for step in unsealed if step > after):
            assert f"skipped checkpoint-{step}: incomplete (no seal" in output, output[-3000:]

    assert cut, "no kill landed inside a save: the test did not test what it says"
    assert json.loads((killed / "metrics.json").read_text())["resumed_at_steps"] == resumed_from
    expected_losses, got = losses(straight), losses(killed)
    assert sorted(got) == list(range(1, STEPS + 1))  # every optimizer step once
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(expected_losses[step], rel=1e-5, abs=1e-6), step
    assert (killed / "adapter" / "adapter_model.safetensors").is_file()
