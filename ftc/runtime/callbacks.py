"""A trainer callback that keeps metrics.json up to date while training runs."""

from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback

from ftc.runtime.clock import process_started_at
from ftc.runtime.metrics import add_trainer_log, new_metrics, write_metrics


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
