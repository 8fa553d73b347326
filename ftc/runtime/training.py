"""The training call every stage makes: progress shown, then the trainer's loop.

One place for what wraps `trainer.train()` whatever the stage (progress now; resuming and
preemption belong here too), so the stage modules stay a screen long and alike.
"""

from __future__ import annotations

from typing import Any

from ftc.runtime.run_folder import RunFolder


def train(trainer: Any, folder: RunFolder) -> None:
    from ftc.runtime.callbacks import show_progress

    show_progress(trainer)
    trainer.train()
