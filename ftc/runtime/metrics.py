"""metrics.json: what a run logged, kept current on disk while it trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftc.fs import atomic_write_text


def new_metrics(stage: str, method: str) -> dict[str, Any]:
    return {
        "stage": stage,
        "method": method,
        "log": [],  # {"step", "loss", "learning_rate", "epoch"} per logged optimizer step
        "train_runtime_s": None,
        "startup_s": None,  # process start → the first training step begins
        "first_loss": None,
        "last_loss": None,
    }


def add_trainer_log(metrics: dict[str, Any], step: int, logs: dict[str, Any]) -> None:
    """Fold one of the trainer's log dicts in: a loss entry, or the final train_runtime."""
    if "loss" in logs:
        metrics["log"].append(
            {
                "step": step,
                "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "epoch": float(logs.get("epoch", 0.0)),
            }
        )
        metrics["first_loss"] = metrics["log"][0]["loss"]
        metrics["last_loss"] = metrics["log"][-1]["loss"]
    if "train_runtime" in logs:
        metrics["train_runtime_s"] = float(logs["train_runtime"])


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    # A reader (a dashboard, a status command) never sees half a file.
    atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
