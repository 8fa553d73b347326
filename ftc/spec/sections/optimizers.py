"""[galore], [apollo], [badam] and [muon]: the settings of the optimizers that have them (ftc.optimizers)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ftc.spec.sections.base import Section

_TARGET = (
    "The decoder's linear layers whose gradients are projected: 'all', or a list of module names (q_proj, "
    "down_proj, …); the embeddings, the head and the norms step with AdamW."
)


class GaloreSection(Section):
    rank: int = Field(
        default=128, ge=1, le=65_536, description="Rank of the gradient projection; at most each target's shorter side."
    )
    update_proj_gap: int = Field(
        default=200, ge=1, le=1_000_000, description="Steps between recomputing the projection (an SVD per matrix)."
    )
    scale: float = Field(default=0.25, gt=0, le=1024, description="Scale of the projected-back update (GaLore's α).")
    proj_type: Literal["std", "reverse_std", "left", "right", "full"] = Field(
        default="std", description="Which side is projected: std projects the longer side away."
    )
    target: str | list[str] = Field(default="all", description=_TARGET)
    layerwise: bool = Field(
        default=False,
        description="Step each weight as soon as its gradient is ready and free it: only one gradient lives at a "
        "time. Needs one micro-batch per step (no accumulation) and one device.",
    )


class ApolloSection(Section):
    rank: int = Field(
        default=256,
        ge=1,
        le=65_536,
        description="Rank of the random projection the moments live in; 1 with scale_type 'tensor' is APOLLO-Mini.",
    )
    update_proj_gap: int = Field(default=200, ge=1, le=1_000_000, description="Steps between new random projections.")
    scale: float = Field(
        default=1.0, gt=0, le=1024, description="Gradient scale factor (the paper uses 1 for APOLLO, 128 for Mini)."
    )
    scale_type: Literal["channel", "tensor"] = Field(
        default="channel", description="One gradient scale per channel (APOLLO) or per tensor (APOLLO-Mini)."
    )
    proj: Literal["random", "svd"] = Field(default="random", description="Random projection, or GaLore's SVD.")
    target: str | list[str] = Field(default="all", description=_TARGET)
    layerwise: bool = Field(
        default=False,
        description="Step each weight as soon as its gradient is ready and free it (one micro-batch per step, one "
        "device).",
    )


class BadamSection(Section):
    mode: Literal["layer", "ratio"] = Field(
        default="layer",
        description="layer: one decoder block trains at a time. (BAdam's ratio mode, a share of every matrix, is "
        "refused: its sparse gradients break the trainer's gradient-norm step.)",
    )
    switch_every: int = Field(default=50, ge=1, le=1_000_000, description="Optimizer steps before the next block.")
    switch_mode: Literal["ascending", "descending", "random", "fixed"] = Field(
        default="ascending", description="The order the blocks train in; fixed keeps start_block."
    )
    start_block: int | None = Field(default=None, ge=0, description="The block to train first (0 is the lowest).")


class MuonSection(Section):
    momentum: float = Field(default=0.95, ge=0, lt=1, description="Momentum of the hidden matrices' updates.")
    nesterov: bool = Field(default=True, description="Nesterov momentum.")
    ns_steps: int = Field(default=5, ge=1, le=50, description="Newton-Schulz iterations orthogonalising each update.")
    adjust_lr: Literal["match_rms_adamw", "original"] = Field(
        default="match_rms_adamw",
        description="match_rms_adamw scales each update to AdamW's RMS, so train.learning_rate serves both groups; "
        "original is Keller Jordan's scaling, which wants a learning rate about 20× AdamW's.",
    )
