"""OFT: peft's orthogonal fine-tuning adapter for the spec's [oft] section.

Each adapted layer's input is cut into blocks and each block turned by a trained rotation; the base
weights stay as they are, and merging multiplies each weight by its block-diagonal rotation.
"""

from __future__ import annotations

from typing import Any

from ftc.errors import RuntimeUserError
from ftc.runtime.model.lora import target_module_names
from ftc.spec.models import OftSection


def oft_config(oft: OftSection, model: Any) -> Any:
    """peft's OFTConfig; a block size (or rank) that does not divide an adapted layer's input width is refused
    here, where peft would pick another size with a warning and train an adapter the plan did not count."""
    from peft import OFTConfig

    targets = target_module_names(oft.target, model, "oft.target")
    block_size, rank = oft.size
    _check_blocks(model, targets, block_size, rank)
    return OFTConfig(
        r=rank,
        oft_block_size=block_size,
        target_modules=targets,
        block_share=oft.block_share,
        coft=oft.coft,
        eps=oft.eps,
        use_cayley_neumann=oft.cayley_neumann,
        num_cayley_neumann_terms=oft.neumann_terms,
        task_type="CAUSAL_LM",
    )


def _check_blocks(model: Any, targets: list[str], block_size: int, rank: int) -> None:
    from torch import nn

    key, size = ("oft.block_size", block_size) if block_size else ("oft.rank", rank)
    widths = {
        module.in_features
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    }
    bad = sorted(width for width in widths if width % size)
    if bad:
        raise RuntimeUserError(
            f"{key} = {size} does not divide the input width {bad[0]} of an adapted layer of this model",
            f"choose a {key.partition('.')[2].replace('_', ' ')} that divides every adapted layer's input width "
            f"({', '.join(map(str, sorted(widths)))})",
        )
