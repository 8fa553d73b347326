"""The trainer callback that seals each checkpoint once all of it is on disk, then rotates old ones.

transformers calls `on_save` right after `Trainer._save_checkpoint` returns, on every rank, when every
file of the checkpoint is written (weights, optimizer, scheduler, RNG, trainer_state.json). Every rank
flushes the folder, all wait for each other, and rank 0 writes the seal. The stop-on-signal path
(`ftc.runtime.distributed.preemption`) saves through the same `_save_checkpoint`, so its checkpoint is sealed too.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from ftc.runs.checkpoints import rotate_checkpoints
from ftc.runs.seal import fsync_folder, write_seal
from ftc.runtime.distributed.collectives import barrier


class SealCheckpoints(TrainerCallback):
    """Seals checkpoint-STEP after the trainer saved it; keeps the newest `keep` whole ones (0: all)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        checkpoints = Path(args.output_dir)
        folder = checkpoints / f"checkpoint-{state.global_step}"
        fsync_folder(folder)  # what this rank wrote (FSDP and DeepSpeed shards, its RNG state) is on disk
        barrier()  # ...and every other rank's: only then may the seal say the folder is whole
        if state.is_world_process_zero:
            write_seal(folder, state.global_step)
            rotate_checkpoints(checkpoints, state.global_step, self.keep)
        return control
