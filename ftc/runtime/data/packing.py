"""Sequence packing: several examples share one row of at most cutoff_len tokens, yet never see each other.

Rows are filled best-fit-decreasing (each example, longest first, goes into the fullest row it still
fits in), so little is left to pad. Each row keeps its examples' lengths (`seq_lengths`); the collator
turns them into position ids that restart at 0 per example and passes no attention mask.

transformers 5 reads such position ids as packed sequences: flash-attention runs its variable-length
kernel over them (in a batch of one row only, so for flash the batch is flattened), and sdpa and eager
get a block-diagonal causal mask (built only when no KV cache is made, so every batch says
use_cache = False). Attention stays inside each example either way; sdpa and
eager still compute the whole row × row scores, only flash skips the masked blocks. The first label of
every example is masked too: the token before it belongs to another example.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftc.runtime.data.token_rows import IGNORE_INDEX, TOKEN, TokenRows, offsets_of, pack_rows

Example = dict[str, list[int]]  # {"input_ids": [...], "labels": [...]}


def pack_examples(examples: Sequence[Example], row_length: int) -> list[dict[str, list[int]]]:
    """Rows of {"input_ids", "labels", "seq_lengths"}; every example lands whole in one row."""
    return pack_token_rows(token_rows_of(examples), row_length).rows()


def pack_token_rows(examples: TokenRows, row_length: int) -> TokenRows:
    """`pack_examples` for examples held flat."""
    return pack_rows(examples, pack_lengths(examples.lengths.tolist(), row_length))


def token_rows_of(examples: Sequence[Example]) -> TokenRows:
    lengths = np.fromiter((len(example["input_ids"]) for example in examples), dtype=np.int64, count=len(examples))
    flat = [token for example in examples for token in example["input_ids"]]
    labels = [label for example in examples for label in example["labels"]]
    return TokenRows(np.array(flat, dtype=TOKEN), np.array(labels, dtype=TOKEN), offsets_of(lengths))


def pack_lengths(lengths: Sequence[int], row_length: int) -> list[list[int]]:
    """Best-fit decreasing: indices of the examples in each row, no row over `row_length`."""
    too_long = [length for length in lengths if length > row_length]
    if too_long:
        raise ValueError(f"an example of {max(too_long)} tokens cannot fit a row of {row_length}")
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), sorted: the best fit is the first with enough room
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        spot = bisect.bisect_left(free, (length, -1))
        if spot == len(free):
            rows.append([index])
            room, row = row_length - length, len(rows) - 1
        else:
            room, row = free.pop(spot)
            rows[row].append(index)
            room -= length
        if room > 0:
            bisect.insort(free, (room, row))
    return rows


@dataclass(frozen=True)
class PackedCollator:
    """Pads packed rows into a batch with per-example position ids and no attention mask.

    Padding gets position ids of its own (0, 1, ...), which makes it a separate block that no real
    token attends to, and labels the loss skips. With `flatten` the batch is one long row without
    padding instead: transformers' flash-attention reads packed position ids only in a batch of one.
    """

    pad_token_id: int
    flatten: bool = False
    multiple_of: int = 1  # rows padded to a multiple of this many tokens (train.shift_attention's groups)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = 0 if self.flatten else padded_width(rows, self.multiple_of)
        input_ids, labels, position_ids = [], [], []
        for row in rows:
            pad = max(width - len(row["input_ids"]), 0)
            input_ids.append(list(row["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(row["labels"]) + [IGNORE_INDEX] * pad)
            position_ids.append([position for length in _lengths(row) for position in range(length)] + list(range(pad)))
        if self.flatten:
            input_ids, labels, position_ids = ([sum(rows_of, [])] for rows_of in (input_ids, labels, position_ids))
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.tensor(position_ids),
            # transformers builds the per-example mask only without a KV cache, and models whose config
            # says use_cache = true make one even in training.
            "use_cache": False,
        }


def packed_collator(pad_token_id: int, attention: str, multiple_of: int = 1) -> PackedCollator:
    """The collator for the plan's attention kernel: flash gets one flat row, sdpa and eager a padded batch."""
    return PackedCollator(pad_token_id, flatten=attention == "flash", multiple_of=multiple_of)


def padded_width(rows: list[dict[str, Any]], multiple_of: int) -> int:
    """The batch's longest row, rounded up to a multiple of `multiple_of`."""
    longest = max(len(row["input_ids"]) for row in rows)
    return -(-longest // multiple_of) * multiple_of


def _lengths(row: dict[str, Any]) -> list[int]:
    # A row that was not packed (an evaluation example) is one example.
    return row.get("seq_lengths") or [len(row["input_ids"])]


@dataclass(frozen=True)
class PaddingCollator:
    """One example per row, right-padded, with an attention mask: the unpacked baseline."""

    pad_token_id: int
    multiple_of: int = 1  # rows padded to a multiple of this many tokens (train.shift_attention's groups)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = padded_width(rows, self.multiple_of)
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
        for row in rows:
            pad = width - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * pad)
            batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * pad)
            batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * pad)
        # No KV cache in training, packed or not: it only costs memory.
        return {**{key: torch.tensor(value) for key, value in batch.items()}, "use_cache": False}


def packing_summary(examples: TokenRows, rows: TokenRows, row_length: int) -> str:
    """One line: how many rows the examples packed into, and how full they are."""
    return (
        f"packing: {len(examples)} examples into {len(rows)} rows of up to {row_length} tokens "
        f"({examples.tokens / (len(rows) * row_length):.0%} full)"
    )
