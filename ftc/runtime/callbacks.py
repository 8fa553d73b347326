"""A trainer callback that keeps metrics.json up to date while training runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from ftc.runs.metrics import add_trainer_log, new_metrics, write_metrics
from ftc.runtime.distributed.clock import process_started_at


class MetricsRecorder(TrainerCallback):
    """Collects each logged loss into metrics.json, and the time from process start to the first step."""

    def __init__(self, path: Path, stage: str, method: str) -> None:
        self.path = path
        self.metrics = new_metrics(stage, method)

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        if self.metrics["startup_s"] is None:
            self.metrics["startup_s"] = round(time.time() - process_started_at(), 3)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        add_trainer_log(self.metrics, state.global_step, logs or {})
        if state.is_world_process_zero:
            write_metrics(self.path, self.metrics)


class TrainingProgress(TrainerCallback):
    """One progress bar with the latest loss beside it, instead of the trainer's bar plus printed dicts."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            # Into a log file (Slurm, CI) every redraw is a line kept forever: redraw rarely there.
            every = 0.1 if sys.stderr.isatty() else 10.0
            self.bar = tqdm(total=state.max_steps, desc="training", unit="step", dynamic_ncols=True, mininterval=every)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if self.bar is not None and logs and "loss" in logs:
            shown = {"loss": f"{logs['loss']:.4f}", "lr": f"{logs.get('learning_rate', 0):.2e}"}
            # a preference stage's margin says more than its loss about whether it is learning
            margin = logs.get("rewards/margins", logs.get("margin"))
            if margin is not None:
                shown["margin"] = f"{margin:.3f}"
            self.bar.set_postfix(shown)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def show_progress(trainer) -> None:
    """Swap the trainer's default progress printing for `TrainingProgress`."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TrainingProgress())
