"""The extras of ftc (pyproject.toml's optional dependencies) a run needs beside ftc[train].

One table, read from the spec and the plan: the docker target installs what it names into the image,
so a run whose method, optimizer, strategy or monitor needs a package finds it there at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftc.compiler.plan import Plan
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.spec.models import Spec

BASE_EXTRA = "train"  # torch, transformers, peft, trl, datasets, accelerate: every run needs these


def needs_bitsandbytes(spec: Spec) -> bool:
    return METHODS[spec.train.method].quantizes or OPTIMIZERS[spec.train.optimizer].library == "bitsandbytes"


@dataclass(frozen=True)
class Extra:
    name: str  # the extra in pyproject.toml
    needed: Callable[[Spec, Plan], bool]
    why: str


EXTRAS: tuple[Extra, ...] = (
    Extra(
        "qlora",
        lambda spec, plan: needs_bitsandbytes(spec),
        "bitsandbytes: 4/8-bit weights (qlora) and 8-bit AdamW",
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
    Extra("wandb", lambda spec, plan: "wandb" in spec.monitor.report_to, "monitor.report_to names wandb"),
    Extra("mlflow", lambda spec, plan: "mlflow" in spec.monitor.report_to, "monitor.report_to names mlflow"),
)


def extras_for(spec: Spec, plan: Plan) -> tuple[str, ...]:
    """The extras beyond ftc[train] this run needs, in the table's order."""
    return tuple(extra.name for extra in EXTRAS if extra.needed(spec, plan))
