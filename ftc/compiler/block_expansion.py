"""LLaMA Pro block expansion ([llama_pro]): where the added blocks go, and the architecture with them.

The base's L decoder blocks are split into N groups of L / N; after each group a copy of the group's
last block is inserted with its output projections (attention's and the MLP's) zeroed. Through the
residual such a block hands its input on unchanged, so the expanded model computes what the base
computed, and only the copies train. The runtime makes the copies (`ftc.runtime.model.block_expansion`);
this module is pure, and both read the copies' places and the refusals from it.
"""

from __future__ import annotations

from dataclasses import replace

from ftc.compiler.model_families import FAMILIES, Family
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import count_parameters
from ftc.errors import FtcError
from ftc.methods import METHODS

KEY = "llama_pro.added_layers"


def added_blocks(base_layers: int, added: int) -> tuple[int, ...]:
    """The copies' indices among the base_layers + added blocks: each follows its group of base_layers / added."""
    group = base_layers // added
    return tuple((copy + 1) * (group + 1) - 1 for copy in range(added))


def expansion_refusal(model_type: str, base_layers: int, added: int) -> tuple[str, str] | None:
    """(what, how to fix it) when this base cannot take `added` copies; None when it can."""
    family = FAMILIES.get(model_type)
    if family is None:
        return (
            f"{KEY}: ftc does not know what model_type '{model_type}' calls its blocks' output projections",
            f"use a family ftc expands ({', '.join(expandable_families())}), or remove [llama_pro]",
        )
    if family.block_expansion_refused:
        return (
            f"{KEY}: model_type '{model_type}' {family.block_expansion_refused}",
            f"remove [llama_pro], or use a dense family ({', '.join(expandable_families())})",
        )
    if added > base_layers or base_layers % added:
        fits = [count for count in range(1, base_layers + 1) if base_layers % count == 0]
        return (
            f"{KEY} = {added} does not divide the base's {base_layers} decoder blocks into equal groups",
            f"use one of: {', '.join(map(str, fits))}",
        )
    return None


def expandable_families() -> list[str]:
    return [name for name, family in FAMILIES.items() if not family.block_expansion_refused]


def output_projections(family: Family) -> tuple[str, str]:
    """The family's names for attention's output projection and the MLP's down projection: what a copy zeroes."""
    return family.module_names.get("o_proj", "o_proj"), family.module_names.get("down_proj", "down_proj")


def expanded_architecture(arch: Architecture, added: int, method: str) -> tuple[Architecture, str]:
    """The architecture with the copies in it, and the plan's note on what the expansion did."""
    refused = expansion_refusal(arch.model_type, arch.num_layers, added)
    if refused:
        raise FtcError(*refused)
    grown = replace(arch, num_layers=arch.num_layers + added)
    before, after = count_parameters(arch).total, count_parameters(grown).total
    places = added_blocks(arch.num_layers, added)
    shown = ", ".join(map(str, places)) if len(places) <= 4 else f"{places[0]}, {places[1]}, …, {places[-1]}"
    what = "carry the LoRA adapter" if METHODS[method].has_adapter else "train"
    note = (
        f"LLaMA Pro: {added} identity copies inserted, one after every {arch.num_layers // added} blocks: "
        f"{arch.num_layers} → {grown.num_layers} decoder blocks, {_billions(before)} → {_billions(after)} "
        f"parameters; only the copies (blocks {shown}, {_billions(after - before)} parameters) {what}"
    )
    return grown, note


def _billions(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"
