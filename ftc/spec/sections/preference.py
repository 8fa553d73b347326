"""[preference]: the preference stages' settings (dpo, kto, orpo, cpo); which stage reads which key, and which
loss types it runs, is on its record (`ftc.stages`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ftc.spec.sections.base import Section
from ftc.stages import STAGES

# Every stage's loss types, in the records' order: the schema and the E-ENUM message list them so.
PreferenceLoss = Literal[tuple(dict.fromkeys(loss for stage in STAGES.values() for loss in stage.loss_types))]

# Keys that only some loss types read (trl reads simpo_gamma under simpo alone): set with another, refused.
LOSS_KEYS: dict[str, tuple[str, ...]] = {"simpo_gamma": ("simpo",)}


class PreferenceSection(Section):
    beta: float = Field(
        default=0.1,
        gt=0,
        le=100,
        description="dpo/kto: β, how far the policy may move from the reference (higher: less); orpo: λ, the "
        "weight of the odds-ratio term beside the SFT loss; cpo: β, the scale of the chosen-over-rejected "
        "log-probability gap inside the loss (for ipo, τ). Unitless.",
    )
    loss_type: PreferenceLoss = Field(
        default="sigmoid",
        description="The preference loss, by trl's names; each stage takes its own. dpo: sigmoid is DPO, "
        "the others its variants. cpo (no reference): sigmoid is CPO, simpo is SimPO (mean log-probability "
        "per token, with a target margin simpo_gamma), hinge and ipo their reference-free forms.",
    )
    ftx: float = Field(
        default=0.0, ge=0, le=100, description="dpo: weight of an SFT loss on the chosen reply added to it; 0: none."
    )
    simpo_gamma: float = Field(
        default=0.5,
        ge=0,
        le=100,
        description="cpo with loss_type = 'simpo': γ, the target margin between the chosen and rejected replies' "
        "rewards (β × mean log-probability per token). Read by no other loss type.",
    )
    cpo_alpha: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="cpo: weight of the NLL loss on the chosen reply added to the preference loss (CPO's "
        "behaviour-cloning term). Unset: 1 for sigmoid, hinge and ipo, 0 for simpo (SimPO has none); "
        "set it with simpo for CPO-SimPO.",
    )
    desirable_weight: float = Field(
        default=1.0, gt=0, le=100, description="kto: loss weight of desirable examples (raise it when they are fewer)."
    )
    undesirable_weight: float = Field(
        default=1.0, gt=0, le=100, description="kto: loss weight of undesirable examples."
    )

    @property
    def nll_weight(self) -> float:
        """cpo: the weight of the chosen reply's NLL term trl adds (cpo_alpha, or its loss type's own)."""
        if self.cpo_alpha is not None:
            return self.cpo_alpha
        # CPO adds the NLL at weight 1; SimPO has none, and trl's trainer drops it only at cpo_alpha = 0 (its
        # "alphapo" alias alone sets that for itself).
        return 0.0 if self.loss_type == "simpo" else 1.0
