"""The token stages' rows: encoded and packed when asked; held-out examples encoded alike, never packed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ftc.runtime.data.rows import prepare_rows
from ftc.runtime.data.token_rows import TokenRows, offsets_of
from ftc.spec.models import DataSection, DatasetSection


@dataclass(frozen=True)
class Encoded:
    rows: TokenRows


def encode(records):
    """A record of n tokens: ids 1..n, all of them labels."""
    ids = np.concatenate([np.arange(1, n + 1) for n in records]).astype(np.int32)
    return Encoded(TokenRows(ids, ids.copy(), offsets_of(np.array(records))))


def data(**keys) -> DataSection:
    return DataSection(datasets=[DatasetSection(path="d.jsonl")], cutoff_len=8, **keys)


def rows_of(section, records, held_out):
    prepared = prepare_rows(section, records, held_out, encode, lambda encoded: f"{len(encoded.rows)} examples")
    evaluated = prepared.evaluated.rows() if prepared.evaluated is not None else None
    return prepared.train.rows(), evaluated, prepared.lines


def test_encoded_records_train_as_they_are_without_packing():
    rows, evaluated, lines = rows_of(data(), [3, 5], [])
    assert rows == [
        {"input_ids": [1, 2, 3], "labels": [1, 2, 3]},
        {"input_ids": [1, 2, 3, 4, 5], "labels": [1, 2, 3, 4, 5]},
    ]
    assert evaluated is None and lines == ["2 examples"]


def test_packing_fills_rows_and_leaves_the_held_out_examples_whole():
    rows, evaluated, lines = rows_of(data(packing=True), [3, 5, 4, 4], [6, 2])
    assert sorted(row["seq_lengths"] for row in rows) == [[4, 4], [5, 3]]
    five_three = next(row for row in rows if row["seq_lengths"] == [5, 3])
    # Each example's first label is masked: the token before it belongs to another example.
    assert five_three["input_ids"] == [1, 2, 3, 4, 5, 1, 2, 3]
    assert five_three["labels"] == [-100, 2, 3, 4, 5, -100, 2, 3]
    assert [len(example["input_ids"]) for example in evaluated] == [6, 2]
    assert lines[0] == "4 examples" and lines[-1] == "evaluation: 2 held-out examples, at every logging step"
