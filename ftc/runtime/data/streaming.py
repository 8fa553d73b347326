"""data.streaming: examples read, encoded and handed to the trainer as it trains, never all in memory.

The trainer gets a `datasets.IterableDataset` whose generator reads the records lazily
(`iter_conversations`, `iter_texts`), so a pass costs one record's memory at a time. Streamed
examples come in file order (or the weighted draw), not shuffled, and a run needs `train.max_steps`
(the spec says so): a stream has no length to count epochs in.

With data.packing the stream is packed a window at a time: PACKING_WINDOW examples are read, packed
best-fit-decreasing into rows as `ftc.runtime.data.packing` packs a whole dataset, and handed on. Only the
last rows of each window are left part-filled, and memory stays bounded by the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from ftc.runtime.data.loading import iter_conversations, iter_texts
from ftc.runtime.data.packing import pack_examples
from ftc.runtime.data.texts import encode_documents
from ftc.runtime.data.tokenize import conversation_segments_of, encode_segment_lists
from ftc.spec.models import DataSection, Spec

Example = dict[str, list[int]]
PACKING_WINDOW = 1024
ENCODING_WINDOW = 256  # records encoded per tokenizer call: small enough that the first step need not wait


def streamed_examples(spec: Spec, tokenizer: Any) -> Any:
    """An IterableDataset of encoded conversations (sft); each pass reads the files again from the start."""
    iter_conversations(spec.data, spec.train.seed)  # opens each dataset now: an empty or unreadable one fails here

    def examples() -> Iterator[Example]:
        for window in _windows(iter_conversations(spec.data, spec.train.seed)):
            # No reply within cutoff_len: left out, as a prepared dataset leaves it out.
            cut = encode_segment_lists(
                tokenizer,
                [conversation_segments_of(tokenizer, conversation, spec.model.template) for conversation in window],
                spec.data.cutoff_len,
            )
            yield from cut.rows.rows()

    return _iterable(examples, spec.data)


def streamed_texts(spec: Spec, tokenizer: Any) -> Any:
    """An IterableDataset of documents (pt), each framed and cut into pieces of at most cutoff_len tokens."""
    iter_texts(spec.data, spec.train.seed)  # as above: a bad dataset fails before training starts

    def examples() -> Iterator[Example]:
        for window in _windows(iter_texts(spec.data, spec.train.seed)):
            rows, _ = encode_documents(tokenizer, [document.text for document in window], spec.data.cutoff_len)
            yield from rows.rows()

    return _iterable(examples, spec.data)


def _windows(items: Iterator[Any], size: int = ENCODING_WINDOW) -> Iterator[list[Any]]:
    """The stream a window at a time, each encoded in one tokenizer call; read no further than that."""
    while window := list(islice(items, size)):
        yield window


def pack_stream(examples: Iterator[Example], row_length: int, window: int = PACKING_WINDOW) -> Iterator[Example]:
    """Packed rows (with their `seq_lengths`) from a stream, a window of examples at a time."""
    while chunk := list(islice(examples, window)):
        yield from pack_examples(chunk, row_length)


def _iterable(examples: Callable[[], Iterator[Example]], data: DataSection) -> Any:
    from datasets import Features, IterableDataset, Sequence, Value

    # Declared, so that the trainer need not read a first example to learn the columns.
    columns = {"input_ids": Sequence(Value("int64")), "labels": Sequence(Value("int64"))}
    if data.packing:
        columns["seq_lengths"] = Sequence(Value("int64"))

    def rows() -> Iterator[Example]:
        return pack_stream(examples(), data.cutoff_len, PACKING_WINDOW) if data.packing else examples()

    return IterableDataset.from_generator(rows, features=Features(columns))


def describe_stream(data: DataSection) -> str:
    count = len(data.datasets)
    mixed = ", mixed by weight" if data.datasets[0].weight is not None else ""
    packed = f"; packed {PACKING_WINDOW} examples at a time into rows of {data.cutoff_len}" if data.packing else ""
    return f"data: streamed from {count} dataset{'s' * (count > 1)}{mixed}, read and encoded while training{packed}"
