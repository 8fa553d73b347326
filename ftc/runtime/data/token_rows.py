"""Token rows kept flat: every row's ids end to end in one array, with the offsets where rows start.

Preparing data a record at a time in Python costs about a millisecond a record; the same work on flat
arrays is a few numpy calls for the whole dataset. The rows become an Arrow table (list columns built
from the same flat arrays, no copy per row), which `datasets` reads memory-mapped from the cache.

Token ids are int32: no vocabulary comes near 2³¹, and the cache is half the size of int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE_INDEX = -100  # labels the loss skips (the HF convention)
TOKEN = np.int32


@dataclass(frozen=True)
class TokenRows:
    """Row i is input_ids[offsets[i]:offsets[i + 1]] (labels alike); packed rows also say where their
    examples start: row i holds the examples of lengths seq_lengths[seq_offsets[i]:seq_offsets[i + 1]]."""

    input_ids: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    seq_lengths: np.ndarray | None = None
    seq_offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def tokens(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def concat(cls, parts: Sequence[TokenRows]) -> TokenRows:
        """The rows of every part, in order (unpacked rows)."""
        if len(parts) == 1:
            return parts[0]
        lengths = np.concatenate([part.lengths for part in parts])
        return cls(
            np.concatenate([part.input_ids for part in parts]),
            np.concatenate([part.labels for part in parts]),
            offsets_of(lengths),
        )

    def take(self, rows: Sequence[int] | np.ndarray) -> TokenRows:
        """The rows at these indices, in this order (an index may repeat)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        positions = spans(self.offsets[rows], lengths)
        return TokenRows(self.input_ids[positions], self.labels[positions], offsets_of(lengths))

    def rows(self) -> list[dict[str, list[int]]]:
        """Each row as lists, as the trainers' collators take them (small data, tests)."""
        return self.to_arrow().to_pylist()

    def to_arrow(self) -> Any:
        import pyarrow as pa

        columns = {
            "input_ids": _list_column(self.input_ids, self.offsets),
            "labels": _list_column(self.labels, self.offsets),
        }
        if self.seq_lengths is not None:
            columns["seq_lengths"] = _list_column(self.seq_lengths, self.seq_offsets)
        return pa.table(columns)

    @classmethod
    def from_arrow(cls, table: Any) -> TokenRows:
        def flat(name: str) -> tuple[np.ndarray, np.ndarray]:
            column = table.column(name).combine_chunks()
            return column.values.to_numpy(), column.offsets.to_numpy().astype(np.int64)

        (input_ids, offsets), (labels, _) = flat("input_ids"), flat("labels")
        seq_lengths, seq_offsets = flat("seq_lengths") if "seq_lengths" in table.column_names else (None, None)
        return cls(input_ids, labels, offsets, seq_lengths, seq_offsets)


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions start, start+1, …, start+length-1 of every span, end to end: a vectorised gather index."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # Each position is its span's start plus its place within the span.
    shift = np.repeat(starts.astype(np.int64) - offsets_of(lengths)[:-1], lengths)
    return np.arange(total, dtype=np.int64) + shift


def row_of_each_token(lengths: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def pack_rows(examples: TokenRows, packed: list[list[int]]) -> TokenRows:
    """Rows that each hold the examples listed for them end to end; an example's first label is masked,
    since the token before it belongs to another example."""
    order = np.fromiter((index for row in packed for index in row), dtype=np.int64)
    joined = examples.take(order)
    labels = joined.labels.copy()
    labels[joined.offsets[:-1][joined.lengths > 0]] = IGNORE_INDEX
    per_row = np.fromiter((len(row) for row in packed), dtype=np.int64, count=len(packed))
    example_offsets = offsets_of(per_row)
    row_offsets = joined.offsets[example_offsets]
    return TokenRows(
        joined.input_ids,
        labels,
        row_offsets,
        seq_lengths=joined.lengths.astype(TOKEN),
        seq_offsets=example_offsets,
    )


def _list_column(values: np.ndarray, offsets: np.ndarray) -> Any:
    import pyarrow as pa

    if offsets[-1] < 2**31:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values.astype(TOKEN, copy=False)))
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values.astype(TOKEN, copy=False)))
