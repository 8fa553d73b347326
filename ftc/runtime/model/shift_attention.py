"""train.shift_attention: LongLoRA's shifted sparse attention (S²-Attn), as an attention function registered with
transformers.

While the model trains, each row is cut into groups of `group` tokens and a token attends only within its
group; half of the heads cut the row `group / 2` tokens further on (the row rolled back by half a group, so
its last half-group and its first share a group), which lets information cross from one group to the next.
Each group is computed by torch's SDPA on copies of q, k and v laid out group by group, with a mask taken
from the model's own (causal, padding, packed examples, sliding windows): what a token may see is what the
model allows it AND its group. Causality is judged on the tokens' places in the row, so in the group that
wraps around the row's start no token sees one after it.

The function is registered under a name of ftc's with transformers' AttentionInterface, and sdpa's mask
builder under the same name, so the model builds the mask it builds for sdpa. Outside training (evaluation,
generation with a cache) the function is plain sdpa. transformers does not save the attention choice in
config.json, so the saved model loads with its usual attention.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ftc.errors import RuntimeUserError

# The name the model's config carries while it trains; ftc's own, so it never shadows a transformers kernel.
ATTENTION_NAME = "ftc_shifted_sparse"


def register_shifted_attention(group: int) -> str:
    """Register the function for groups of `group` tokens; the attn_implementation name to load the model with."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, partial(shifted_sparse_attention, group=group))
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME


def check_model_takes_it(model: Any, name: str) -> None:
    """Refuse a model whose attention does not call through transformers' interface: it would attend whole rows."""
    if not model.is_backend_compatible():
        raise RuntimeUserError(
            f"train.shift_attention: {name!r} ({model.config.model_type}) computes attention in code that does not "
            "call transformers' attention interface, so its attention cannot be grouped",
            "remove train.shift_attention",
        )
    heads = model.config.get_text_config().num_attention_heads
    if heads % 2:
        raise RuntimeUserError(
            f"train.shift_attention shifts half of the heads, and {name!r} has {heads}", "remove train.shift_attention"
        )


def shifted_sparse_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    *,
    group: int,
    shift: bool = True,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention signature: q [batch, heads, seq, dim], k and v [batch, kv heads, seq, dim];
    returns [batch, seq, heads, dim]. `shift` False groups every head alike (for tests: the unshifted half)."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    length = query.shape[2]
    if not module.training or key.shape[2] != length:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if length % group:
        # The collator pads every row to whole groups; a row that is not is ftc's bug, not the user's.
        raise ValueError(f"shifted sparse attention: a row of {length} tokens is not whole groups of {group}")
    if kwargs.get("softcap") is not None:
        raise ValueError("shifted sparse attention runs torch's SDPA, which does not soft-cap the scores")
    import torch

    repeats = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, repeats), repeat_kv(value, repeats)
    offset = group // 2 if shift else 0
    places = _places(length, group, offset, query.device)
    allowed = _allowed(attention_mask, places, query.shape[0])
    out = torch.nn.functional.scaled_dot_product_attention(
        *(_into_groups(tensor, group, offset) for tensor in (query, key, value)),
        attn_mask=allowed,
        dropout_p=dropout,
        scale=scaling,
    )
    return _out_of_groups(out, query.shape, group, offset), None


def _places(length: int, group: int, offset: int, device: Any) -> Any:
    """[2, groups, group]: the place in the row of each token, group by group, for each half of the heads."""
    import torch

    row = torch.arange(length, device=device)
    return torch.stack((row, (row + offset) % length)).view(2, length // group, group)


def _allowed(mask: Any, places: Any, batch: int) -> Any:
    """[batch × 2 × groups, 1, group, group] booleans: the model's mask (causal where it gives none) within each
    group, and every token itself, so a padding token's row is never empty (an empty row makes NaN)."""
    import torch

    queries, keys = places[..., :, None], places[..., None, :]
    if mask is None:
        allowed = (keys <= queries).unsqueeze(0)
    else:
        if mask.dtype != torch.bool:
            mask = mask == 0  # an additive mask: 0 where attending, a large negative number where not
        allowed = mask[:, 0, queries, keys]  # [mask batch, 2, groups, group, group]
    allowed = allowed | torch.eye(places.shape[-1], dtype=torch.bool, device=places.device)
    return allowed.expand(batch, *allowed.shape[1:]).reshape(-1, 1, *allowed.shape[-2:])


def _into_groups(tensor: Any, group: int, offset: int) -> Any:
    """[batch, heads, seq, dim] → [batch × 2 × groups, heads / 2, group, dim]; the second half rolled back by
    `offset`, so its groups start `offset` tokens further on (and the last one takes the row's first tokens)."""
    import torch

    batch, heads, length, dim = tensor.shape
    half = heads // 2
    rolled = torch.cat((tensor[:, :half], tensor[:, half:].roll(-offset, dims=2)), dim=1)
    grouped = rolled.view(batch, 2, half, length // group, group, dim).transpose(2, 3)
    return grouped.reshape(batch * 2 * (length // group), half, group, dim)


def _out_of_groups(out: Any, shape: Any, group: int, offset: int) -> Any:
    """The inverse of `_into_groups`, laid out as transformers' attention functions return: [batch, seq, heads, dim]."""
    import torch

    batch, heads, length, dim = shape
    half = heads // 2
    rows = (
        out.view(batch, 2, length // group, half, group, dim)
        .permute(0, 1, 2, 4, 3, 5)
        .reshape(batch, 2, length, half, dim)
    )
    rows = torch.cat((rows[:, :1], rows[:, 1:].roll(offset, dims=2)), dim=1)
    return rows.permute(0, 2, 1, 3, 4).reshape(batch, length, heads, dim)
