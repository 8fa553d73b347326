"""Stopping cleanly when the cluster asks: a signal → a checkpoint at the end of the step → exit.

Slurm sends SIGTERM to a job it cancels, requeues or preempts (then SIGKILL after KillWait), and the
signal the spec asks for (SIGUSR1 by default) a while before the time limit. Either way the step in
flight finishes, a checkpoint is written, and the process exits; the next start resumes from it
(`ftc.runtime.distributed.resume`). Only the warning signal requeues the job itself: SIGTERM means the scheduler
already decided what happens next.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from transformers import TrainerCallback

from ftc.runs.stopping import EXIT_STOPPED, STOP_SIGNALS, WARNING_SIGNAL


@dataclass
class StopRequest:
    signal_number: int | None = None

    @property
    def received(self) -> bool:
        return self.signal_number is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else ""


class SaveAndStopOnSignal(TrainerCallback):
    """Turns a received stop signal into 'save a checkpoint now and stop' at the next optimizer step's end."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request

    def on_step_end(self, args, state, control, **kwargs):
        if self.request.received:
            control.should_save = True
            control.should_training_stop = True
        return control


@contextmanager
def stop_on_signals(trainer=None) -> Iterator[StopRequest]:
    """While training, SIGTERM and SIGUSR1 ask for a checkpoint and a stop instead of killing the process.

    Without a trainer (a loop of our own, as ppo's) the loop reads `request.received` after each step.
    """
    request = StopRequest()
    callback = SaveAndStopOnSignal(request)
    if trainer is not None:
        trainer.add_callback(callback)
    # Handlers can only be set from the main thread; elsewhere (a notebook's worker) signals keep their default.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        for number in STOP_SIGNALS:
            previous[number] = signal.signal(number, lambda received, frame: _note(request, received))
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if trainer is not None:
            trainer.remove_callback(callback)


def _note(request: StopRequest, number: int) -> None:
    if not request.received:
        name = signal.Signals(number).name
        print(f"\n{name} received: saving a checkpoint at the end of this step, then stopping", flush=True)
    request.signal_number = number


def stop_for_restart(request: StopRequest, step: int, checkpoint_dir: str) -> None:
    """After a stop: say where the checkpoint is, requeue the Slurm job if the warning came, and exit."""
    print(f"stopped by {request.signal_name} at step {step}; checkpoint in {checkpoint_dir}", flush=True)
    job_id = os.environ.get("SLURM_JOB_ID")
    # One requeue per job: from the first process (torchrun's RANK, else Slurm's task id), not from every rank.
    first_process = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"
    if request.signal_number == WARNING_SIGNAL and job_id and first_process:
        # The time limit is near: put the job back in the queue; its next start resumes from the checkpoint.
        result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
        outcome = "requeued" if result.returncode == 0 else f"could not requeue: {result.stderr.strip()}"
        print(f"slurm job {job_id} {outcome}", flush=True)
    elif not job_id:
        print("continue it with: ftc launch SPEC --resume", flush=True)
    sys.stdout.flush()
    raise SystemExit(EXIT_STOPPED)
