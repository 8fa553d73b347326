"""The token stages' rows: encoded and packed when asked, or streamed; held-out examples encoded alike."""

from __future__ import annotations

from dataclasses import dataclass

from ftc.runtime.data.rows import training_rows
from ftc.spec.models import DataSection, DatasetSection


@dataclass(frozen=True)
class Encoded:
    examples: list[dict[str, list[int]]]


def encode(records):
    """A record of n tokens: n ids, all of them labels."""
    return Encoded([{"input_ids": [1] * n, "labels": [1] * n} for n in records])


def data(**keys) -> DataSection:
    return DataSection(datasets=[DatasetSection(path="d.jsonl")], cutoff_len=8, **keys)


def rows_of(section, records, held_out, capsys):
    rows, evaluated = training_rows(
        section, records, held_out, encode, lambda encoded: f"{len(encoded.examples)} examples", lambda: "the stream"
    )
    return rows, evaluated, capsys.readouterr().out.splitlines()


def test_encoded_records_train_as_they_are_without_packing(capsys):
    rows, evaluated, lines = rows_of(data(), [3, 5], [], capsys)
    assert [len(row["input_ids"]) for row in rows] == [3, 5] and evaluated is None
    assert lines == ["2 examples"]


def test_packing_fills_rows_and_leaves_the_held_out_examples_whole(capsys):
    rows, evaluated, lines = rows_of(data(packing=True), [3, 5, 4, 4], [6, 2], capsys)
    assert sorted(row["seq_lengths"] for row in rows) == [[4, 4], [5, 3]]
    assert [len(example["input_ids"]) for example in evaluated] == [6, 2]
    assert lines[0] == "4 examples" and lines[-1] == "evaluation: 2 held-out examples, at every logging step"


def test_streamed_records_come_from_the_stream_and_only_the_held_out_are_encoded(capsys):
    rows, evaluated, lines = rows_of(data(streaming=True), None, [4], capsys)
    assert rows == "the stream" and len(evaluated) == 1
    assert lines[0].startswith("data: streamed from 1 dataset")
