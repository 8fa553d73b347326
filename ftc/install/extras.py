"""The extras of ftc (pyproject.toml's optional dependencies) a run needs beside ftc[train].

One table, read from the spec and the plan: the docker target installs what it names into the image,
so a run whose method, optimizer, strategy, kernels or monitor needs a package finds it there at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftc.compiler.plan import Plan
from ftc.kernels import kernels_needing_package
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import DEFAULT_BACKEND, QUANTIZERS
from ftc.spec.models import Spec

_BITSANDBYTES_EXTRA = QUANTIZERS[DEFAULT_BACKEND].extra  # bitsandbytes' layers and its 8-bit optimizers
BASE_EXTRA = "train"  # torch, transformers, peft, trl, datasets, accelerate: every run needs these


def needs_bitsandbytes(spec: Spec, plan: Plan | None = None) -> bool:
    """Without a plan, the spec's quantization.backend stands for the backend a checkpoint may name instead."""
    return (
        _quantizes_with(spec, plan, _BITSANDBYTES_EXTRA)
        or OPTIMIZERS[spec.train.optimizer].extra == _BITSANDBYTES_EXTRA
    )


def _quantizes_with(spec: Spec, plan: Plan | None, extra: str) -> bool:
    """The run's quantization backend (chosen, or the checkpoint's) is installed by this extra."""
    if plan is not None:
        backend = plan.quantization_backend.value
    else:
        backend = spec.quantization.backend if METHODS[spec.train.method].quantizes else None
    return backend is not None and QUANTIZERS[backend].extra == extra


# One extra per quantization backend beside bitsandbytes' (the qlora extra), in the registry's order.
_QUANTIZER_EXTRAS = {quantizer.extra: quantizer.summary for quantizer in QUANTIZERS.values()}


def trains_images(plan: Plan) -> bool:
    """The plan is for an image+text model (the planner notes what its images cost)."""
    from ftc.compiler.vision_plan import IMAGES_NOTE

    return any(note.startswith(IMAGES_NOTE) for note in plan.notes)


def _kernel_extras(plan: Plan) -> set[str]:
    """The extras of the kernel packages the plan's run imports (ftc.kernels)."""
    needed = kernels_needing_package(plan.kernels.value, plan.attention.value, plan.backend.value)
    return {kernel.extra for kernel in needed}


@dataclass(frozen=True)
class Extra:
    name: str  # the extra in pyproject.toml
    needed: Callable[[Spec, Plan], bool]
    why: str
    # False: its package's build imports torch (flash-attn), so pip installs it after ftc[train], into the same
    # environment (--no-build-isolation), not beside torch in one resolution.
    isolated_build: bool = True


EXTRAS: tuple[Extra, ...] = (
    Extra(
        "qlora",
        lambda spec, plan: needs_bitsandbytes(spec, plan),
        "bitsandbytes: 4/8-bit weights (qlora) and 8-bit AdamW",
    ),
    *(
        Extra(extra, lambda spec, plan, extra=extra: _quantizes_with(spec, plan, extra), why)
        for extra, why in _QUANTIZER_EXTRAS.items()
        if extra != _BITSANDBYTES_EXTRA
    ),
    Extra(
        "optimizers",
        lambda spec, plan: OPTIMIZERS[spec.train.optimizer].extra == "optimizers",
        "train.optimizer's library: galore-torch, apollo-torch, badam or adam-mini",
    ),
    Extra(
        "distributed",
        lambda spec, plan: str(plan.strategy.value).startswith("zero"),
        "DeepSpeed: the plan's ZeRO strategy",
    ),
    Extra("liger", lambda spec, plan: "liger" in _kernel_extras(plan), "liger-kernel: train.kernels names liger"),
    Extra(
        "flash",
        lambda spec, plan: "flash" in _kernel_extras(plan),
        "flash-attn: model.attention = 'flash' on CUDA",
        isolated_build=False,
    ),
    Extra(
        "vision",
        lambda spec, plan: trains_images(plan),
        "Pillow: an image+text model's images (transformers' Pillow image processors; no torchvision needed)",
    ),
    Extra("eval", lambda spec, plan: bool(spec.eval.tasks), "lm-eval: [eval] scores the result on benchmarks"),
    Extra("wandb", lambda spec, plan: "wandb" in spec.monitor.report_to, "monitor.report_to names wandb"),
    Extra("mlflow", lambda spec, plan: "mlflow" in spec.monitor.report_to, "monitor.report_to names mlflow"),
)


def extras_for(spec: Spec, plan: Plan, isolated: bool | None = None) -> tuple[str, ...]:
    """The extras beyond ftc[train] this run needs, in the table's order; `isolated` keeps only those whose
    packages build in isolation (True) or only those built against the installed torch (False)."""
    return tuple(
        extra.name
        for extra in EXTRAS
        if extra.needed(spec, plan) and (isolated is None or extra.isolated_build == isolated)
    )
