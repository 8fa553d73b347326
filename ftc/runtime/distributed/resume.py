"""Resuming a run from its newest checkpoint: weights, optimizer, schedule, data order and RNG.

The trainer restores all of these from a checkpoint folder; what ftc adds is choosing the folder,
refusing a resume whose data or schedule changed since the run began (the trainer would silently
skip to the end or replay other batches), and carrying the loss log over so the curve continues.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.fs import atomic_write_text
from ftc.runs.checkpoints import checkpoint_step, choose_checkpoint, remove_skipped
from ftc.runs.fingerprint import FINGERPRINT_FILE, differences, schedule_of
from ftc.runs.folder import RunFolder


def data_fingerprint(dataset: Any) -> dict[str, Any]:
    """Examples and a hash of the tokenized training data, as the trainer will batch it."""
    digest = hashlib.sha256()
    if not hasattr(dataset, "data"):  # a streamed dataset: its content is not at hand to hash
        return {"examples": None, "sha256": "streamed"}
    table = dataset.data.table  # datasets keeps an Arrow table; hashing its batches costs no Python loop per row
    digest.update(",".join(table.column_names).encode())
    for batch in table.to_batches():
        digest.update(batch.serialize())
    return {"examples": len(dataset), "sha256": digest.hexdigest()}


def matching_checkpoint(folder: RunFolder, current: dict[str, Any]) -> Path | None:
    """The newest whole checkpoint if the run still matches the fingerprint (schedule, data) taken when it
    began; a changed run is refused. None for a fresh start, whose fingerprint is taken now. Newer folders
    that are not whole are named, with why, and removed: the run writes them again."""
    from ftc.runtime.distributed.collectives import barrier
    from ftc.runtime.distributed.process_group import rank

    fingerprint_file = folder.path / FINGERPRINT_FILE
    choice = choose_checkpoint(folder.checkpoints)
    checkpoint = choice.chosen
    if rank() == 0:  # every rank chooses alike; one says so
        for line in choice.lines():
            print(line, flush=True)
    if checkpoint is not None and fingerprint_file.is_file():
        changes = differences(json.loads(fingerprint_file.read_text(encoding="utf-8")), current)
        if changes:
            raise RuntimeUserError(
                f"cannot resume {folder.path} from {checkpoint.name}: the run changed since it began: "
                + "; ".join(changes),
                "restore the original spec and data to resume, or start a new run (another output.dir, or --overwrite)",
            )
    barrier()  # every rank has chosen before rank 0 removes what it skipped
    if rank() == 0:
        remove_skipped(choice)
        if checkpoint is None:
            atomic_write_text(fingerprint_file, json.dumps(current, indent=2) + "\n")
    return checkpoint


def resume_point(trainer: Any, folder: RunFolder) -> Path | None:
    """The checkpoint to resume from, or None for a fresh start; refuses one the run no longer matches."""
    current = {"schedule": schedule_of(folder.spec, folder.plan), "data": data_fingerprint(trainer.train_dataset)}
    checkpoint = matching_checkpoint(folder, current)
    if checkpoint is None:
        return None
    from ftc.runtime.distributed.process_group import rank

    step = checkpoint_step(checkpoint)
    carry_metrics_over(trainer, folder, step)
    if rank() == 0:  # every rank resumes; one says so
        print(
            f"resuming from {checkpoint.name} (step {step}): weights, optimizer, schedule, data order and RNG",
            flush=True,
        )
    return checkpoint


def carry_metrics_over(trainer: Any, folder: RunFolder, step: int) -> None:
    """The loss log up to the checkpoint goes on in metrics.json; entries after it are retrained, so dropped."""
    from ftc.runtime.callbacks import MetricsRecorder

    if not folder.metrics.is_file():
        return
    earlier = json.loads(folder.metrics.read_text(encoding="utf-8"))
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, MetricsRecorder):
            log = [entry for entry in earlier.get("log", []) if entry["step"] <= step]
            callback.metrics["log"] = log + callback.metrics["log"]
            callback.metrics["resumed_at_steps"] = [*earlier.get("resumed_at_steps", []), step]
            if log:
                callback.metrics["first_loss"] = log[0]["loss"]
                callback.metrics["last_loss"] = log[-1]["loss"]
