"""The plan's notes on switched-on features, which its decisions do not show: packing, NEFTune, shifted sparse
attention, and OFT's blocks (which the estimate's inputs read too)."""

from __future__ import annotations

from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import OftBlocks, adapted_layers, oft_parameters
from ftc.spec.models import OftSection, Spec


def feature_notes(spec: Spec, attention: str) -> tuple[str, ...]:
    """What switched-on features do to the run that the plan's decisions do not show."""
    notes = _packing_notes(spec, attention)
    if spec.train.neftune_alpha is not None:
        notes += (
            f"NEFTune: uniform noise (alpha {spec.train.neftune_alpha:g}) on the input embeddings while training; "
            "a transient the size of the embeddings' output, below the forward's peak, so no term changes",
        )
    group, cutoff = spec.attention_group, spec.data.cutoff_len
    if group is not None:
        notes += (
            f"shifted sparse attention (LongLoRA): rows padded to whole groups of {group} tokens ({cutoff // group} "
            f"per {cutoff}-token row), half of the heads grouped {group // 2} tokens further on; each query attends "
            f"to at most {group} keys, not {cutoff}, which scales the attention FLOPs and each layer's mask bias "
            "(two layouts: batch × 2 × seq × group); evaluation and the saved model attend over whole rows",
        )
    return notes


def oft_notes(spec: Spec, arch: Architecture | None) -> tuple[str, ...]:
    """OFT's size and what it keeps, which the terms hold but do not show; checks its blocks against the shapes."""
    adapter = spec.adapter_section
    if not isinstance(adapter, OftSection) or arch is None:
        return ()
    blocks = oft_blocks(adapter)
    layers = adapted_layers(arch, adapter.target, "oft.target")
    splits = sorted({(linear.in_features, *blocks.split(linear)) for linear in layers})
    shown = ", ".join(f"{width} → {count} blocks of {size}" for width, count, size in splits)
    series = (
        f"a {blocks.neumann_terms}-term Cayley–Neumann series" if blocks.neumann_terms else "the exact Cayley transform"
    )
    return (
        f"OFT: {oft_parameters(arch, blocks, adapter.target):,} trained values (each block's rotation stores "
        f"b(b-1)/2{', one shared per layer' if blocks.shared else ''}) on {sum(linear.count for linear in layers)} "
        f"layers, input width {shown}; each rotation is built by {series} and its block matrices are kept for the "
        "backward (counted in activations)",
    )


def oft_blocks(oft: OftSection) -> OftBlocks:
    block_size, rank = oft.size
    terms = oft.neumann_terms if oft.cayley_neumann else 0
    return OftBlocks(block_size=block_size, rank=rank, shared=oft.block_share, neumann_terms=terms)


def _packing_notes(spec: Spec, attention: str) -> tuple[str, ...]:
    if not spec.data.packing:
        return ()
    apart = (
        "flash-attention's variable-length kernel keeps them apart"
        if attention == "flash"
        else f"{attention} keeps them apart with a block-diagonal mask, but still computes each row's full attention"
    )
    return (f"packing: each row of {spec.data.cutoff_len} tokens holds several examples; {apart}",)
