"""The trainer settings every stage shares, from the spec's [train] section and the plan.

The plan, not the spec, decides batch shape, precision and checkpointing: it knows the hardware.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.runs.folder import RunFolder
from ftc.runtime.optimizers import trainer_arguments as optimizer_arguments


def strategy_arguments(run: RunFolder) -> dict[str, Any]:
    """How the trainer spreads the run over the processes torchrun started, from the plan's strategy: one
    process, torchrun's DDP, DeepSpeed ZeRO from the run folder's deepspeed.json, or FSDP2 from its fsdp.json."""
    import json

    from ftc.compiler import deepspeed_config, fsdp_config
    from ftc.devices.backends import BACKENDS

    plan = run.plan
    strategy = plan.strategy.value
    arguments: dict[str, Any] = {}
    if plan.world_size.value > 1:
        arguments |= {
            "ddp_backend": BACKENDS[plan.backend.value].collective,
            "ddp_timeout": run.spec.launch.collective_timeout_s,
        }
    if strategy == "ddp":
        # Every trainable parameter takes part in each forward; looking for unused ones costs a graph walk.
        arguments["ddp_find_unused_parameters"] = False
    elif strategy in deepspeed_config.ZERO_STAGES:
        if importlib.util.find_spec("deepspeed") is None:
            raise RuntimeUserError(
                f"the plan's strategy {strategy!r} runs on DeepSpeed, which is not installed here",
                "pip install 'ftc[distributed]' where the run trains (DS_BUILD_OPS=0 builds its kernels on first use)",
            )
        if plan.backend.value == "cpu":
            check_deepspeed_builds_on_cpu(strategy)
        arguments["deepspeed"] = str(_strategy_file(run, deepspeed_config.FILE_NAME))
    elif strategy == "fsdp":
        settings = json.loads(_strategy_file(run, fsdp_config.FILE_NAME).read_text(encoding="utf-8"))
        # The precision is the plan's (bf16/fp16 below); the file names it for the reader.
        settings.pop("mixed_precision", None)
        arguments |= {"fsdp": True, "fsdp_config": settings}
    return arguments


# DeepSpeed's CPU accelerator compiles its shared-memory collective (C++, the op below) when its engine
# starts, unless DeepSpeed was installed with it built; torch's extension builder runs $CXX, else c++.
CPU_COMM_OP = "deepspeed_shm_comm"


def check_deepspeed_builds_on_cpu(strategy: str) -> None:
    """A ZeRO run of CPU processes needs a C++ compiler on first use; without one each rank fails in a build log."""
    import shutil

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is not None:
        return
    from deepspeed.git_version_info import installed_ops

    if not installed_ops.get(CPU_COMM_OP, False):
        raise RuntimeUserError(
            f"the plan's strategy {strategy!r} on CPU processes has DeepSpeed compile its {CPU_COMM_OP} op on "
            f"first use, and there is no C++ compiler ({compiler}) here",
            "install one (e.g. apt-get install g++), or train CPU processes with train.strategy = 'ddp' or 'fsdp'",
        )


def _strategy_file(run: RunFolder, name: str) -> Any:
    path = run.path / name
    if not path.is_file():
        raise RuntimeUserError(
            f"the plan's strategy {run.plan.strategy.value!r} needs {path}, which is missing",
            "regenerate the run folder with ftc launch",
        )
    return path


def training_arguments(run: RunFolder) -> dict[str, Any]:
    """Keyword arguments for transformers' TrainingArguments (and so for trl's configs, its subclasses)."""
    train, plan = run.spec.train, run.plan
    precision = plan.precision.value
    return {
        "output_dir": str(run.checkpoints),
        "per_device_train_batch_size": plan.micro_batch_size.value,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps.value,
        # Under FSDP each wrapped layer checkpoints itself (fsdp.json); the trainer's would gather twice.
        "activation_checkpointing": plan.gradient_checkpointing.value and plan.strategy.value != "fsdp",
        # Spelled out both ways: trl turns bf16 on when neither is given.
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": plan.backend.value == "cpu",
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.lr_scheduler,
        "warmup_steps": warmup_fraction(train.warmup_ratio),
        "weight_decay": train.weight_decay,
        "max_grad_norm": train.max_grad_norm,
        "max_steps": train.max_steps if train.max_steps is not None else -1,
        "num_train_epochs": train.epochs if train.epochs is not None else 1.0,
        "seed": train.seed,
        "data_seed": train.seed,
        "logging_steps": train.logging_steps,
        "logging_first_step": True,  # the curve starts at the untrained loss
        "save_strategy": "steps",
        "save_steps": train.save_steps,
        # ftc rotates after sealing (ftc.runtime.checkpoint_sealing); the trainer rotates before a checkpoint is sealed
        "save_total_limit": None,
        # NEFTune: transformers hooks the input embeddings for the length of train() (pt, sft; the spec checks)
        "neftune_noise_alpha": train.neftune_alpha,
        **optimizer_arguments(run.spec),  # transformers builds it by name, or ftc hands it over (training.py)
        **kernel_arguments(run),
        **monitor_arguments(run),
        **strategy_arguments(run),
        "disable_tqdm": False,
    }


def kernel_arguments(run: RunFolder) -> dict[str, Any]:
    """The plan's speed kernels as TrainingArguments switch them on: transformers patches the model with them when
    training starts. A kernel's loss is on only where the plan chose its head: trl's trainers refuse liger's for
    their own, and on a score head (rm) or a trainer that reads the logits itself (orpo) it would replace the
    wrong forward."""
    from ftc.kernels import KERNELS

    plan = run.plan
    arguments: dict[str, Any] = {}
    for name in plan.kernels.value:  # installed: the model's loading checked (ftc.runtime.model.loading)
        kernel = KERNELS[name]
        arguments[kernel.trainer_switch] = True
        arguments[kernel.trainer_config] = {kernel.loss_option: plan.loss_head.value == kernel.loss_head}
    return arguments


def evaluation_arguments(run: RunFolder, evaluates: bool) -> dict[str, Any]:
    """Evaluate at every logging step when the stage has eval data, so each logged loss has an eval loss beside it."""
    if not evaluates:
        return {"eval_strategy": "no"}
    return {
        "eval_strategy": "steps",
        "eval_steps": run.spec.train.logging_steps,
        "per_device_eval_batch_size": run.plan.micro_batch_size.value,
    }


def warmup_fraction(ratio: float) -> float:
    # transformers reads warmup_steps below 1 as a fraction of all steps and 1.0 as a single step,
    # so a whole-run warmup is passed as the largest fraction below 1.
    return ratio if ratio < 1 else math.nextafter(1.0, 0.0)


# What each monitor needs installed; its keys come from the environment only.
MONITOR_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def monitor_arguments(run: RunFolder) -> dict[str, Any]:
    """report_to and run_name from the spec's [monitor]; the rest the reporters read from the environment."""
    monitor = run.spec.monitor
    for name in monitor.report_to:
        if importlib.util.find_spec(MONITOR_PACKAGES[name]) is None:
            raise RuntimeUserError(
                f"monitor.report_to names {name}, which is not installed here",
                f"pip install {MONITOR_PACKAGES[name]}, or remove it from monitor.report_to",
            )
    os.environ.update(monitor_environment(run))
    return {
        "report_to": list(monitor.report_to) or "none",
        "run_name": monitor.run_name or run.path.name,
    }


def monitor_environment(run: RunFolder) -> dict[str, str]:
    """transformers' reporters take these from the environment, not from TrainingArguments."""
    monitor = run.spec.monitor
    environment = {"TENSORBOARD_LOGGING_DIR": str(run.path / "tensorboard")}  # beside metrics.json, not in checkpoints
    if monitor.project is not None:
        environment |= {"WANDB_PROJECT": monitor.project, "MLFLOW_EXPERIMENT_NAME": monitor.project}
    return environment
