"""Plain documents → causal-LM examples for pre-training: every token is a target.

A document is framed as the model frames text (its BOS token if it has one, then EOS at the end, so
the model learns where a document stops) and cut into pieces of at most cutoff_len tokens: in
pre-training a long document is more data, not something to truncate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import TextDocument


@dataclass(frozen=True)
class EncodedTexts:
    examples: list[dict[str, list[int]]]  # {"input_ids": [...], "labels": [...]}, labels == input_ids
    documents: int
    split: int  # documents longer than cutoff_len, cut into several examples


def encode_texts(tokenizer: Any, documents: list[TextDocument], cutoff_len: int) -> EncodedTexts:
    pieces = tokenizer([document.text for document in documents], add_special_tokens=False)["input_ids"]
    examples, split = [], 0
    for ids in pieces:
        examples += document_examples(tokenizer, ids, cutoff_len)
        split += len(ids) + (tokenizer.bos_token_id is not None) + 1 > cutoff_len  # framed, it needs a cut
    if not examples:
        raise RuntimeUserError("the text datasets hold no text to train on", "check the 'text' field of the records")
    return EncodedTexts(examples, len(documents), split)


def document_examples(tokenizer: Any, ids: list[int], cutoff_len: int) -> list[dict[str, list[int]]]:
    """One tokenized document, framed (BOS, EOS), as examples of at most cutoff_len tokens each."""
    start = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    framed = start + list(ids) + [tokenizer.eos_token_id]
    chunks = (framed[begin : begin + cutoff_len] for begin in range(0, len(framed), cutoff_len))
    return [{"input_ids": chunk, "labels": list(chunk)} for chunk in chunks if len(chunk) > 1]  # 1 predicts nothing


def describe_texts(data: EncodedTexts) -> str:
    lengths = [len(example["input_ids"]) for example in data.examples]
    return (
        f"data: {data.documents} documents → {len(lengths)} examples, {sum(lengths)} tokens "
        f"({sum(lengths) / len(lengths):.0f} on average, longest {max(lengths)}; {data.split} documents split)"
    )
