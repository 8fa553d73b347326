"""Combinations known to fail, refused at plan time with the reason and what works instead.

Each of these is a failure users of other tools meet only after the job has started on the GPUs.
"""

from __future__ import annotations

import re

from ftc.compiler.hardware import Hardware
from ftc.errors import FtcError
from ftc.methods import METHODS
from ftc.stages import STAGES

_PREQUANTIZED = re.compile(r"(?:^|[-_/.])(gptq|awq|fp8|gguf|exl2)(?:$|[-_/.])", re.IGNORECASE)


def is_prequantized(name_or_path: str) -> bool:
    return bool(_PREQUANTIZED.search(name_or_path))


def check_combination(
    name_or_path: str, method: str, stage: str, strategy: str, record: Hardware, published_quantized: bool = False
) -> None:
    """`published_quantized`: the base's config.json says it was quantized before it was published."""
    if strategy in ("zero3", "fsdp") and (published_quantized or is_prequantized(name_or_path)):
        raise FtcError(
            f"{name_or_path} is a pre-quantized checkpoint, which ZeRO-3 and FSDP cannot partition",
            "use strategy 'zero2' or 'ddp', or start from the unquantized model",
        )
    if METHODS[method].quantizes and strategy == "zero3":
        raise FtcError(
            "bitsandbytes QLoRA weights cannot be partitioned by ZeRO-3",
            "use strategy 'fsdp' (FSDP-QLoRA, quant storage in the compute dtype) or 'zero2'",
        )
    if STAGES[stage].replicas_only and strategy not in ("single", "ddp"):
        # Under ZeRO-3 or FSDP the rollout's generate() and the adapter switched off for the reference pass
        # would each need the shards gathered; ftc's PPO loop keeps whole replicas instead.
        raise FtcError(
            f"train.stage = {stage!r} keeps the policy, its reference and the reward model whole on each device "
            f"(ddp), not sharded by {strategy}",
            "use strategy 'ddp' (with qlora, or devices with more memory, if it does not fit), or grpo, which trl "
            "runs under ZeRO and FSDP",
        )
