"""Plain documents → causal-LM examples for pre-training: every token is a target.

A document is framed as the model frames text (its BOS token if it has one, then EOS at the end, so
the model learns where a document stops) and cut into pieces of at most cutoff_len tokens: in
pre-training a long document is more data, not something to truncate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftc.errors import RuntimeUserError
from ftc.runtime.data.batch_encode import encode_batch, in_chunks
from ftc.runtime.data.loading import TextDocument
from ftc.runtime.data.token_rows import TOKEN, TokenRows, offsets_of, spans


@dataclass(frozen=True)
class EncodedTexts:
    rows: TokenRows  # labels == input_ids
    documents: int
    split: int  # documents longer than cutoff_len, cut into several examples

    @property
    def examples(self) -> list[dict[str, list[int]]]:
        return self.rows.rows()


def encode_texts(tokenizer: Any, documents: Sequence[TextDocument], cutoff_len: int) -> EncodedTexts:
    """Every document encoded, framed, and cut into examples of at most cutoff_len tokens, a chunk per call."""
    parts = [
        encode_documents(tokenizer, [document.text for document in chunk], cutoff_len)
        for chunk in in_chunks(documents, "documents")
    ]
    rows = TokenRows.concat([rows for rows, _ in parts])
    if not len(rows):
        raise RuntimeUserError("the text datasets hold no text to train on", "check the 'text' field of the records")
    return EncodedTexts(rows, len(documents), sum(split for _, split in parts))


def encode_documents(tokenizer: Any, texts: list[str], cutoff_len: int) -> tuple[TokenRows, int]:
    """(the examples, how many documents were split)."""
    ids, lengths = encode_batch(tokenizer, texts)
    has_bos = int(tokenizer.bos_token_id is not None)
    framed_lengths = lengths + has_bos + 1
    starts = offsets_of(framed_lengths)
    framed = np.empty(int(starts[-1]), dtype=TOKEN)
    if has_bos:
        framed[starts[:-1]] = tokenizer.bos_token_id
    framed[spans(starts[:-1] + has_bos, lengths)] = ids
    framed[starts[1:] - 1] = tokenizer.eos_token_id
    # Each document in pieces of cutoff_len; its last piece holds what is left.
    pieces = -(-framed_lengths // cutoff_len)
    document = np.repeat(np.arange(len(texts)), pieces)
    index = np.arange(int(pieces.sum())) - np.repeat(offsets_of(pieces)[:-1], pieces)
    piece_lengths = np.minimum(cutoff_len, framed_lengths[document] - index * cutoff_len)
    kept = piece_lengths > 1  # a single token predicts nothing
    positions = spans(starts[:-1][document][kept] + index[kept] * cutoff_len, piece_lengths[kept])
    tokens = framed[positions]
    rows = TokenRows(tokens, tokens.copy(), offsets_of(piece_lengths[kept]))
    return rows, int((framed_lengths > cutoff_len).sum())


def describe_texts(data: EncodedTexts) -> str:
    lengths = data.rows.lengths
    return (
        f"data: {data.documents} documents → {len(lengths)} examples, {lengths.sum()} tokens "
        f"({lengths.mean():.0f} on average, longest {lengths.max()}; {data.split} documents split)"
    )
