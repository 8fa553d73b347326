"""The FSDP configuration of an fsdp plan: FSDP2 through accelerate, as transformers' `fsdp_config` keys.

Pure: plan + the model's type → a dict that becomes fsdp.json in the run folder, which the runtime
hands to TrainingArguments(fsdp=True, fsdp_config=...). Each decoder layer is its own FSDP unit (the
wrap policy names its class), so one layer's full weights exist at a time during forward and backward.
"""

from __future__ import annotations

from typing import Any

from ftc.compiler.model_families import FAMILIES
from ftc.compiler.plan import Plan

# The file in the run folder that the runtime hands to TrainingArguments(fsdp_config=...).
FILE_NAME = "fsdp.json"

# What accelerate's FSDP2 mixed-precision policy computes and reduces in, per plan precision.
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def fsdp_config(plan: Plan, model_type: str | None) -> dict[str, Any] | None:
    """transformers' fsdp_config for an fsdp plan; None for any other strategy."""
    if plan.strategy.value != "fsdp":
        return None
    config: dict[str, Any] = {
        "version": 2,
        # Full sharding: parameters are freed again after each layer's forward (ZeRO-3's memory).
        "reshard_after_forward": True,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        # FSDP's own checkpointing of each wrapped layer; the trainer's would gather the weights twice.
        "activation_checkpointing": bool(plan.gradient_checkpointing.value),
        "cpu_offload": plan.offload.value != "none",
        # Saving gathers every shard into one state dict on rank 0: the result is one safetensors model.
        "state_dict_type": "FULL_STATE_DICT",
        # On accelerators rank 0's weights are broadcast to the other ranks as the model is sharded, so the
        # non-zero ranks may hold empty weights (a 70B model eight times over would not fit in host RAM).
        "cpu_ram_efficient_loading": plan.backend.value != "cpu",
        "mixed_precision": MIXED_PRECISION[plan.precision.value],
    }
    family = FAMILIES.get(model_type or "")  # not family_of: an unknown type is no llama here
    if family is not None:
        config["transformer_layer_cls_to_wrap"] = [family.decoder_layer]
    # Without a known class, transformers wraps the classes the model lists in _no_split_modules.
    return config
