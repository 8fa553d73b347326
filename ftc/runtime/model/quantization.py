"""Method `qlora`: the base held by bitsandbytes in the plan's 4 or 8 bits."""

from __future__ import annotations

from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError


def quantization_config(plan: Plan, compute_dtype: Any) -> Any:
    """bitsandbytes' config for the plan's bits: NF4 with double quantization (the QLoRA recipe), or LLM.int8."""
    bits = plan.quantization_bits.value
    if bits not in (4, 8):
        raise RuntimeUserError(
            f"train.method = 'qlora' but the plan has quantization_bits = {bits!r}",
            "regenerate the run folder with `ftc launch`; the plan chooses 4 or 8 bits for qlora",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RuntimeUserError(
            "train.method = 'qlora' needs bitsandbytes, which is not installed", "pip install 'ftc[qlora]'"
        ) from None
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
