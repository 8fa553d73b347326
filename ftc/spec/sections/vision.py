"""[vision]: which parts of an image+text model train: its vision tower, its projector, its language model."""

from __future__ import annotations

from pydantic import Field, model_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import Section, rule_error


class VisionSection(Section):
    """What trains in an image+text model (LLaVA, Qwen2-VL, Gemma 3) under sft, dpo or kto; refused for a text-only
    model."""

    freeze_tower: bool = Field(
        default=True,
        description="Keep the vision tower (the image encoder) frozen: its weights take no gradients, no optimizer "
        "state, and the plan holds only one block's working set of its activations. false trains it whole, "
        "whatever the method does to the language model.",
    )
    freeze_projector: bool = Field(
        default=False,
        description="Keep the projector (LLaVA's MLP from image features to language-model tokens, Qwen2-VL's "
        "patch merger) frozen. By default it trains whole beside the method's language-model weights.",
    )
    projector_only: bool = Field(
        default=False,
        description="Train the projector alone, the vision tower and the language model frozen: LLaVA's stage-1 "
        "pre-alignment on image-caption pairs. Needs train.method = 'full' (no adapter, no layer choice).",
    )

    @model_validator(mode="after")
    def _projector_only_trains_the_projector(self) -> VisionSection:
        if self.projector_only and self.freeze_projector:
            raise rule_error(
                "projector_only trains the projector alone, but freeze_projector = true freezes it",
                "remove vision.freeze_projector, or set vision.projector_only = false",
                at="vision.freeze_projector",
                code=Code.CONFLICT,
            )
        if self.projector_only and not self.freeze_tower:
            raise rule_error(
                "projector_only trains the projector alone, but freeze_tower = false trains the vision tower too",
                "remove vision.freeze_tower, or set vision.projector_only = false",
                at="vision.freeze_tower",
                code=Code.CONFLICT,
            )
        return self
