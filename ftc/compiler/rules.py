"""Combinations known to fail, refused at plan time with the reason and what works instead.

Each of these is a failure users of other tools meet only after the job has started on the GPUs.
"""

from __future__ import annotations

import re

from ftc.compiler.hardware import Hardware
from ftc.errors import FtcError

_PREQUANTIZED = re.compile(r"(?:^|[-_/.])(gptq|awq|fp8|gguf|exl2)(?:$|[-_/.])", re.IGNORECASE)


def is_prequantized(name_or_path: str) -> bool:
    return bool(_PREQUANTIZED.search(name_or_path))


def check_combination(name_or_path: str, method: str, stage: str, strategy: str, record: Hardware) -> None:
    if method == "qlora" and record.backend == "npu":
        raise FtcError(
            "train.method = 'qlora' needs bitsandbytes, which has no supported Ascend NPU backend",
            "use method = 'lora' on NPUs (or 'full' with ZeRO)",
        )
    if strategy in ("zero3", "fsdp") and is_prequantized(name_or_path):
        raise FtcError(
            f"{name_or_path} is a pre-quantized checkpoint, which ZeRO-3 and FSDP cannot partition",
            "use strategy 'zero2' or 'ddp', or start from the unquantized model",
        )
    if method == "qlora" and strategy == "zero3":
        raise FtcError(
            "bitsandbytes QLoRA weights cannot be partitioned by ZeRO-3",
            "use strategy 'fsdp' (FSDP-QLoRA, quant storage in the compute dtype) or 'zero2'",
        )
    if stage == "ppo" and method == "lora" and strategy == "zero3":
        raise FtcError(
            "PPO with LoRA under ZeRO-3 fails when the reference pass disables the adapter",
            "use strategy 'zero2' or 'fsdp'",
        )
