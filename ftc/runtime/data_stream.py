"""data.streaming: examples read, encoded and handed to the trainer as it trains, never all in memory.

The trainer gets a `datasets.IterableDataset` whose generator reads the records lazily
(`iter_conversations`), so a pass costs one record's memory at a time. Streamed examples come in
file order (or the weighted draw), not shuffled, and a run needs `train.max_steps` (the spec says
so): a stream has no length to count epochs in. Packing needs the whole set; the spec refuses it with streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ftc.runtime.data import iter_conversations
from ftc.runtime.tokenize import encode_conversation
from ftc.spec.models import DataSection, Spec

Example = dict[str, list[int]]


def streamed_examples(spec: Spec, tokenizer: Any) -> Any:
    """An IterableDataset of encoded conversations; each pass over it reads the files again from the start."""
    from datasets import Features, IterableDataset, Sequence, Value

    iter_conversations(spec.data, spec.train.seed)  # opens each dataset now: an empty or unreadable one fails here

    def examples() -> Iterator[Example]:
        for conversation in iter_conversations(spec.data, spec.train.seed):
            example, _ = encode_conversation(tokenizer, conversation, spec.model.template, spec.data.cutoff_len)
            if example is not None:  # no reply within cutoff_len
                yield example

    # Declared, so that trl need not read a first example to learn the columns.
    features = Features({"input_ids": Sequence(Value("int64")), "labels": Sequence(Value("int64"))})
    return IterableDataset.from_generator(examples, features=features)


def describe_stream(data: DataSection) -> str:
    count = len(data.datasets)
    mixed = ", mixed by weight" if data.datasets[0].weight is not None else ""
    return f"data: streamed from {count} dataset{'s' if count > 1 else ''}{mixed}, read and encoded while training"
