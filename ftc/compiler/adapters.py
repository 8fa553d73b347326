"""The LoRA adapter a run starts from (model.adapter): its rank, alpha and target modules.

A lora/qlora run trains that adapter further as it was saved, so its adapter_config.json, not the
spec's [lora] section, decides the adapter's size. Reading the file is the caller's business
(`ftc.models.lookup.adapter_for`, beside config.json); this module reads the parsed dict and is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import decoder_linears
from ftc.errors import FtcError
from ftc.methods import METHODS
from ftc.spec.models import Spec

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class AdapterShape:
    source: str  # the folder its adapter_config.json was read from
    rank: int
    alpha: float
    targets: str | tuple[str, ...]  # "all", or the module names it adapts
    dropout: float
    per_module_ranks: bool = False  # peft's rank_pattern/alpha_pattern: some layers have a rank of their own


def adapter_from_config(config: Mapping[str, Any], source: str) -> AdapterShape:
    """The shape in a peft adapter_config.json, already parsed into a dict."""
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if config.get("peft_type", "LORA") != "LORA" or not isinstance(rank, int) or rank < 1:
        raise FtcError(
            f"model.adapter: {source}/{ADAPTER_CONFIG} is not a LoRA adapter's config (peft_type LORA, r ≥ 1)",
            "name the adapter/ folder of an earlier lora or qlora run",
        )
    targets = config.get("target_modules") or "all"
    if isinstance(targets, str):
        # peft reads a string as a regular expression over full module paths; "all-linear" is every linear
        # layer but the head. Either way the upper bound is every linear layer of the blocks.
        targets = "all"
    return AdapterShape(
        source=source,
        rank=rank,
        alpha=float(alpha if isinstance(alpha, int | float) else rank),
        targets=targets if isinstance(targets, str) else tuple(sorted(targets)),
        dropout=float(config.get("lora_dropout") or 0.0),
        per_module_ranks=bool(config.get("rank_pattern") or config.get("alpha_pattern")),
    )


def with_adapter_lora(spec: Spec, adapter: AdapterShape, arch: Architecture | None) -> tuple[Spec, str]:
    """The spec as the plan must read it when the run trains `adapter` further, and the note that says so.

    The adapter's rank, alpha, dropout and targets take the place of [lora]'s, which do not apply to it.
    Names outside the decoder blocks' linear layers (a head, an embedding) are left out of the count.
    """
    targets = adapter.targets
    left_out: list[str] = []
    if arch is not None and targets != "all":
        known = set().union(*(linear.answers_to for linear in decoder_linears(arch)))
        left_out = [name for name in targets if name not in known]
        targets = tuple(name for name in targets if name in known)
        if not targets:
            raise FtcError(
                f"model.adapter: {adapter.source} adapts {', '.join(adapter.targets)}, none of them a linear layer "
                f"of this {arch.model_type} model's blocks",
                "name the adapter/ folder of a run trained on this same base model",
            )
    lora = spec.lora.model_copy(
        update={
            "rank": adapter.rank,
            "alpha": adapter.alpha,
            "dropout": adapter.dropout,
            "target": targets if isinstance(targets, str) else list(targets),
        }
    )
    shown = "every linear layer" if targets == "all" else ", ".join(targets)
    note = (
        f"LoRA terms from model.adapter ({adapter.source}/{ADAPTER_CONFIG}): rank {adapter.rank}, "
        f"alpha {adapter.alpha:g}, on {shown}; [lora] rank and target do not apply to an adapter trained further"
    )
    if left_out:
        note += f"; {', '.join(left_out)} not counted"
    if adapter.per_module_ranks:
        note += "; its per-module ranks (rank_pattern) are counted at rank " + str(adapter.rank)
    return spec.model_copy(update={"lora": lora}), note


def spec_with_adapter(
    spec: Spec, adapter: AdapterShape | None, arch: Architecture | None
) -> tuple[Spec, tuple[str, ...]]:
    """The spec the planner reads, and its notes: [lora] replaced by model.adapter's shape where a run trains it."""
    if spec.model.adapter is None or not METHODS[spec.train.method].has_adapter:
        return spec, ()  # full and freeze merge the adapter into the base: no adapter terms
    if adapter is None:
        return spec, (
            f"model.adapter's {ADAPTER_CONFIG} was not read (it is not a local folder): the LoRA terms assume "
            f"[lora]'s rank {spec.lora.rank} and targets",
        )
    adapted, note = with_adapter_lora(spec, adapter, arch)
    return adapted, (note,)
