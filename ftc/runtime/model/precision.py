"""Our precision names (fp32, bf16, fp16) as torch dtypes: the one place that maps them."""

from __future__ import annotations

from typing import Any

from ftc.compiler.plan import Plan


def torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def compute_dtype(plan: Plan) -> Any:
    """The dtype the plan computes in: autocast's, and that of every frozen weight the plan's memory counts
    (an adapter's base, a reference, a reward model)."""
    return torch_dtype(plan.precision.value)
