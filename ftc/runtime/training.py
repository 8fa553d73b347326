"""The training call every stage makes: progress shown, resumed from the last checkpoint, stopped cleanly.

One place for what wraps `trainer.train()` whatever the stage, so the stage modules stay a screen
long and alike: a run folder that holds a checkpoint continues from it (a requeued Slurm job, a
`ftc launch --resume`), and a stop signal ends the run with a checkpoint instead of losing it. It
also checks the trainer's device against the plan and gives LoRA+ its optimizer, for every stage.
`fit` is the rest a stage trained by a transformers or trl trainer shares: the trainer built from the
run folder's settings, trained, and its results written.
"""

from __future__ import annotations

from typing import Any

from ftc.runs.folder import RunFolder


def fit(
    folder: RunFolder,
    model: Any,
    tokenizer: Any,
    rows: Any,
    evaluated: Any,
    *,
    trainer_class: type,
    config_class: type,
    settings: dict[str, Any],
    preparation: dict[str, Any] | None = None,
    **trainer_arguments: Any,
) -> None:
    """Train `model` with the stage's trainer and leave the result, metrics.json and its plots in the run folder.
    `config_class` is the trainer's TrainingArguments class, given the run's settings and the stage's own
    (`settings`: max_length, beta, ...); `trainer_arguments` are the stage's own (ref_model, data_collator, ...).
    `rows` are records (a list) or a dataset; `evaluated` the held-out records (alike), None without any.
    `preparation` says how the token stages' data was prepared, for metrics.json."""
    from datasets import Dataset

    from ftc.runtime.callbacks import MetricsRecorder
    from ftc.runtime.outputs import finish, save_trained
    from ftc.runtime.trainer_args import evaluation_arguments, training_arguments

    recorder = MetricsRecorder(folder.metrics, stage=folder.spec.train.stage, method=folder.spec.train.method)
    if preparation is not None:
        recorder.metrics["data_preparation"] = preparation
    trainer = trainer_class(
        model=model,
        args=config_class(**training_arguments(folder), **evaluation_arguments(folder, bool(evaluated)), **settings),
        train_dataset=Dataset.from_list(rows) if isinstance(rows, list) else rows,
        eval_dataset=(Dataset.from_list(evaluated) if isinstance(evaluated, list) else evaluated)
        if evaluated
        else None,
        processing_class=tokenizer,
        callbacks=[recorder],
        **trainer_arguments,
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)


def train(trainer: Any, folder: RunFolder) -> None:
    from ftc.runtime.callbacks import show_progress
    from ftc.runtime.checkpoint_sealing import SealCheckpoints
    from ftc.runtime.distributed.backend_check import check_trainer_device
    from ftc.runtime.distributed.preemption import stop_for_restart, stop_on_signals
    from ftc.runtime.distributed.process_group import use_fsdp_on_cpu
    from ftc.runtime.distributed.resume import resume_point
    from ftc.runtime.model.lora import attach_lora_plus
    from ftc.runtime.optimizers import attach_optimizer
    from ftc.runtime.plan_check import plan_check_callback

    show_progress(trainer)
    count_parameters_once(trainer)
    check_trainer_device(trainer, folder.plan)  # nothing fell back to the CPU on its own
    use_fsdp_on_cpu(trainer, folder.plan)
    attach_lora_plus(trainer, folder.spec)
    attach_optimizer(trainer, folder.spec)
    train_section = folder.spec.train
    trainer.add_callback(
        plan_check_callback(
            trainer,
            folder.plan,
            train_section.method,
            train_section.stage,
            train_section.optimizer,
            train_section.pure_bf16,
        )
    )
    trainer.add_callback(SealCheckpoints(keep=folder.spec.train.save_total_limit))
    checkpoint = resume_point(trainer, folder)  # the newest sealed one, handed over by path: not the trainer's pick
    with stop_on_signals(trainer) as stop:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if stop.received:
        step = trainer.state.global_step
        stop_for_restart(stop, step, str(folder.checkpoints / f"checkpoint-{step}"))


def count_parameters_once(trainer: Any) -> None:
    """transformers totals the run's flops by counting the model's parameters again on every micro-step (a
    walk over every module, ~4% of a small model's step); the count does not change while training, so
    it is taken once, at the first micro-step, and the total comes out the same."""
    count_flops = trainer.floating_point_ops
    per_token: list[float] = []

    def floating_point_ops(inputs: Any) -> float:
        # A stage's inputs may be other than a batch of token ids (grpo's are its prompts): counted as they were.
        tokens = inputs.get("input_ids") if isinstance(inputs, dict) else None
        if tokens is None or not hasattr(tokens, "numel"):
            return count_flops(inputs)
        if not per_token:
            per_token.append(count_flops(inputs) / max(tokens.numel(), 1))
        return per_token[0] * tokens.numel()

    trainer.floating_point_ops = floating_point_ops
