"""Resume: 20 steps straight, and 10 steps + a stop signal + a resume, give the same losses for steps 11-20."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.seal import is_sealed
from ftc.runs.stopping import EXIT_STOPPED
from ftc.runtime.__main__ import run
from ftc.runtime.callbacks import MetricsRecorder
from tests.tiny_runs import tiny_spec

STEPS = 20
STOP_AT = 10


def losses(run_dir: Path) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in json.loads((run_dir / "metrics.json").read_text())["log"]}


def stop_with_sigterm_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The real signal, sent to this process at the end of `step`, as Slurm would send it."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == step:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(MetricsRecorder, "on_step_end", on_step_end, raising=False)


def train_run(run_folder, tmp_path: Path, name: str, model: Path, data: Path, **train: object) -> Path:
    # Both runs share this process, and the LoRA matrices are drawn from torch's global generator before the
    # trainer seeds it: start each run from the same generator state, as a fresh process would.
    import torch

    torch.manual_seed(0)
    return run_folder(tiny_spec(tmp_path / name, model, data, max_steps=STEPS, logging_steps=1, save_steps=15, **train))


@pytest.mark.slow
def test_stopped_and_resumed_run_matches_a_straight_run(tmp_path, tiny_model_dir, run_folder, monkeypatch):
    data = write_tiny_alpaca(tmp_path / "tiny.json", n=96, seed=0)
    straight = train_run(run_folder, tmp_path, "straight", tiny_model_dir, data)
    run(str(straight))

    resumed = train_run(run_folder, tmp_path, "resumed", tiny_model_dir, data)
    with monkeypatch.context() as patch:
        stop_with_sigterm_at(patch, STOP_AT)
        with pytest.raises(SystemExit) as stopped:
            run(str(resumed))
    assert stopped.value.code == EXIT_STOPPED
    assert (resumed / "checkpoints" / f"checkpoint-{STOP_AT}" / "trainer_state.json").is_file()
    assert is_sealed(resumed / "checkpoints" / f"checkpoint-{STOP_AT}")  # the stop's save is sealed like any
    assert not (resumed / "adapter").exists()  # a stopped run leaves a checkpoint, not a result
    assert max(losses(resumed)) == STOP_AT

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back
    run(str(resumed))
    expected, got = losses(straight), losses(resumed)
    assert sorted(got) == list(range(1, STEPS + 1))  # every optimizer step once: none lost, none repeated
    for step in range(STOP_AT + 1, STEPS + 1):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["resumed_at_steps"] == [STOP_AT]
    assert (resumed / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_resume_whose_data_or_schedule_changed_is_refused(tmp_path, tiny_model_dir, run_folder, monkeypatch):
    data = write_tiny_alpaca(tmp_path / "tiny.json", n=48, seed=0)
    run_dir = train_run(run_folder, tmp_path, "run", tiny_model_dir, data)
    with monkeypatch.context() as patch:
        stop_with_sigterm_at(patch, 3)
        with pytest.raises(SystemExit):
            run(str(run_dir))

    write_tiny_alpaca(data, n=48, seed=1)  # same size, other records
    with pytest.raises(RuntimeUserError) as caught:
        run(str(run_dir))
    assert "cannot resume" in caught.value.message and "data.datasets" in caught.value.message
    assert "train.max_steps" not in caught.value.message

    write_tiny_alpaca(data, n=48, seed=0)
    spec = (run_dir / "spec.toml").read_text()
    (run_dir / "spec.toml").write_text(spec.replace(f"max_steps = {STEPS}", "max_steps = 2"))
    with pytest.raises(RuntimeUserError) as caught:
        run(str(run_dir))
    assert "train.max_steps 20 → 2" in caught.value.message and "data.datasets" not in caught.value.message
    assert not (run_dir / "adapter").exists()  # not silently "finished" at step 3


def test_the_warning_signal_requeues_the_slurm_job_and_sigterm_does_not(tmp_path, monkeypatch, capsys):
    from ftc.runtime.distributed.preemption import StopRequest, stop_for_restart

    calls = tmp_path / "scontrol.log"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f'#!/usr/bin/env bash\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_PROCID", "0")

    for signal_number in (signal.SIGTERM, signal.SIGUSR1):
        with pytest.raises(SystemExit) as stopped:
            stop_for_restart(StopRequest(signal_number), 7, "checkpoint-7")
        assert stopped.value.code == EXIT_STOPPED
    assert calls.read_text() == "requeue 99\n"  # only once: for the warning before the time limit
    assert "slurm job 99 requeued" in capsys.readouterr().out
