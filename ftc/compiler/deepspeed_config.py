"""The DeepSpeed config of a ZeRO plan, generated so that nobody writes DeepSpeed JSON by hand.

Pure: plan + [train] + model facts → a dict that becomes deepspeed.json in the run folder. Every value
the plan knows is written out — batch shape, precision, clipping, offload — rather than left as
"auto" for the trainer to fill in; transformers checks the file against its TrainingArguments (built
from the same plan), so the two cannot disagree unseen.
"""

from __future__ import annotations

from typing import Any

from ftc.compiler.plan import Plan
from ftc.spec.models import TrainSection

# The file in the run folder that the runtime hands to TrainingArguments(deepspeed=...).
FILE_NAME = "deepspeed.json"
ZERO_STAGES = {"zero1": 1, "zero2": 2, "zero3": 3}

# fp16 has too little range for raw gradients: the loss is scaled up before backward and the scale
# adapts — halved on an overflow (after `hysteresis` of them), doubled after `loss_scale_window` clean steps.
FP16_LOSS_SCALING = {
    "loss_scale": 0,  # 0: dynamic
    "initial_scale_power": 16,  # start at 2**16
    "loss_scale_window": 1000,
    "hysteresis": 2,
    "min_loss_scale": 1,
}


def deepspeed_config(plan: Plan, train: TrainSection, hidden_size: int | None = None) -> dict[str, Any] | None:
    """The config for a zero1/zero2/zero3 plan; None for any other strategy."""
    stage = ZERO_STAGES.get(plan.strategy.value)
    if stage is None:
        return None
    config: dict[str, Any] = {
        "train_batch_size": plan.global_batch_size,
        "train_micro_batch_size_per_gpu": plan.micro_batch_size.value,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps.value,
        "gradient_clipping": train.max_grad_norm,
        **_precision(plan.precision.value),
        "zero_optimization": _zero(stage, plan.offload.value, hidden_size, on_cpu=plan.backend.value == "cpu"),
        "steps_per_print": 2**31 - 1,  # the trainer logs the loss; DeepSpeed's own progress lines are noise
        "wall_clock_breakdown": False,
    }
    # No "optimizer" otherwise: the trainer hands DeepSpeed its torch AdamW, which ZeRO partitions as it
    # would its own. That is also what runs on the CPU, where DeepSpeed's fused Adam needs CUDA and its
    # CPU Adam is a C++ kernel compiled on first use; a CPU plan never offloads (its states are in host RAM).
    if plan.offload.value != "none":
        # ZeRO-Offload steps the optimizer on the host with DeepSpeed's CPU Adam; a torch optimizer
        # handed over by the trainer is refused there, so the optimizer is named here with the spec's values.
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": train.learning_rate, "weight_decay": train.weight_decay, "betas": [0.9, 0.999]},
        }
    return config


def _precision(precision: str) -> dict[str, Any]:
    if precision == "bf16":
        return {"bf16": {"enabled": True}, "fp16": {"enabled": False}}
    if precision == "fp16":
        return {"fp16": {"enabled": True, **FP16_LOSS_SCALING}, "bf16": {"enabled": False}}
    return {"fp16": {"enabled": False}, "bf16": {"enabled": False}}


def _zero(stage: int, offload: str, hidden_size: int | None, on_cpu: bool = False) -> dict[str, Any]:
    # Overlapping the reductions with backward needs a second stream; DeepSpeed's CPU accelerator has
    # none, so there it would only double the gradient buckets.
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": not on_cpu, "contiguous_gradients": True}
    if offload in ("optimizer", "optimizer+params"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if offload == "optimizer+params":
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if hidden_size:
        # Buckets sized to the model, as transformers would fill its "auto": one hidden × hidden matrix per
        # reduction, prefetch just under it, and parameters under ten rows kept whole rather than partitioned.
        zero["reduce_bucket_size"] = hidden_size * hidden_size
    if stage == 3:
        if hidden_size:
            zero["stage3_prefetch_bucket_size"] = int(0.9 * hidden_size * hidden_size)
            zero["stage3_param_persistence_threshold"] = 10 * hidden_size
        # Saving gathers the partitions into one 16-bit state dict: the saved model is whole, not shards.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return zero
