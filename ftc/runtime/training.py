"""The training call every stage makes: progress shown, resumed from the last checkpoint, stopped cleanly.

One place for what wraps `trainer.train()` whatever the stage, so the stage modules stay a screen
long and alike: a run folder that holds a checkpoint continues from it (a requeued Slurm job, a
`ftc launch --resume`), and a stop signal ends the run with a checkpoint instead of losing it. It
also checks the trainer's device against the plan and gives LoRA+ its optimizer, for every stage.
"""

from __future__ import annotations

from typing import Any

from ftc.runs.folder import RunFolder


def train(trainer: Any, folder: RunFolder) -> None:
    from ftc.runtime.callbacks import show_progress
    from ftc.runtime.checkpoint_sealing import SealCheckpoints
    from ftc.runtime.distributed.backend_check import check_trainer_device
    from ftc.runtime.distributed.preemption import stop_for_restart, stop_on_signals
    from ftc.runtime.distributed.process_group import use_fsdp_on_cpu
    from ftc.runtime.distributed.resume import resume_point
    from ftc.runtime.model.loading import attach_lora_plus
    from ftc.runtime.plan_check import plan_check_callback

    show_progress(trainer)
    check_trainer_device(trainer, folder.plan)  # nothing fell back to the CPU on its own
    use_fsdp_on_cpu(trainer, folder.plan)
    attach_lora_plus(trainer, folder.spec)
    trainer.add_callback(plan_check_callback(trainer, folder.plan, folder.spec.train.method, folder.spec.train.stage))
    trainer.add_callback(SealCheckpoints(keep=folder.spec.train.save_total_limit))
    checkpoint = resume_point(trainer, folder)  # the newest sealed one, handed over by path: not the trainer's pick
    with stop_on_signals(trainer) as stop:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if stop.received:
        step = trainer.state.global_step
        stop_for_restart(stop, step, str(folder.checkpoints / f"checkpoint-{step}"))
