"""[preference]: the preference stages' settings (dpo, kto, orpo); which stage reads which key is on its
record (`ftc.stages`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ftc.spec.sections.base import Section

DpoLoss = Literal[
    "sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sigmoid_norm",
]  # fmt: skip


class PreferenceSection(Section):
    beta: float = Field(
        default=0.1,
        gt=0,
        le=100,
        description="dpo/kto: β, how far the policy may move from the reference (higher: less); orpo: λ, the "
        "weight of the odds-ratio term beside the SFT loss. Unitless.",
    )
    loss_type: DpoLoss = Field(default="sigmoid", description="dpo: the preference loss (trl's names; sigmoid is DPO).")
    ftx: float = Field(
        default=0.0, ge=0, le=100, description="dpo: weight of an SFT loss on the chosen reply added to it; 0: none."
    )
    desirable_weight: float = Field(
        default=1.0, gt=0, le=100, description="kto: loss weight of desirable examples (raise it when they are fewer)."
    )
    undesirable_weight: float = Field(
        default=1.0, gt=0, le=100, description="kto: loss weight of undesirable examples."
    )
