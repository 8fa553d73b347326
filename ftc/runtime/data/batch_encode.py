"""Many texts to token ids in one call to the fast tokenizer, on every core, as flat arrays.

The Rust tokenizer encodes a batch in parallel threads; the per-text Python around it is what made
preparation slow. `TOKENIZERS_PARALLELISM` is turned on for the call only: the run's environment keeps
it off so that forked data-loader workers do not warn, and a worker never tokenizes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain
from typing import Any, TypeVar

import numpy as np

from ftc.runtime.data.token_rows import TOKEN

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E")
_CHECKED = 64  # texts encoded both ways, to trust the tokenizer's backend with the rest


def encode_batch(tokenizer: Any, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids of every text end to end, each text's token count); no special tokens are added."""
    if not texts:
        return np.zeros(0, dtype=TOKEN), np.zeros(0, dtype=np.int64)
    with _parallel():
        pieces = _backend_ids(tokenizer, texts) if _backend_agrees(tokenizer, texts) else None
        if pieces is None:
            pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    ids = np.fromiter(chain.from_iterable(pieces), dtype=TOKEN, count=int(lengths.sum()))
    return ids, lengths


def _backend_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    encodings = tokenizer.backend_tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
    return [encoding.ids for encoding in encodings]


def _backend_agrees(tokenizer: Any, texts: Sequence[str]) -> bool:
    """Whether the Rust tokenizer alone gives what the transformers tokenizer gives: some tokenizer classes
    adjust text or ids in Python (a legacy SentencePiece prefix, say), and then only the full call is right."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return False
    sample = list(texts[:_CHECKED])
    return _backend_ids(tokenizer, sample) == tokenizer(sample, add_special_tokens=False)["input_ids"]


@contextmanager
def _parallel() -> Iterator[None]:
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


CHUNK = 8192  # records encoded per call: the progress bar moves, and the Python lists stay small


def in_chunks(items: Sequence[T], what: str) -> Iterator[Sequence[T]]:
    """`items` a chunk at a time, with a progress bar (records/s) once there are several chunks."""
    if len(items) <= CHUNK:
        yield items
        return
    from tqdm.auto import tqdm

    every = 0.1 if sys.stderr.isatty() else 10.0  # into a log file, a redraw is a line kept forever
    with tqdm(total=len(items), desc=f"preparing {what}", unit=" records", unit_scale=True, mininterval=every) as bar:
        for start in range(0, len(items), CHUNK):
            yield items[start : start + CHUNK]
            bar.update(min(CHUNK, len(items) - start))


def overlapped(chunks: Iterable[T], render: Callable[[T], R], encode: Callable[[R], E]) -> Iterator[E]:
    """encode(render(chunk)) of each chunk, in order. The Rust tokenizer lets go of the GIL while it encodes,
    so one chunk is encoded on a thread of its own while this one renders the next: the Python work hides
    behind the tokenizer's instead of adding to it."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ftc-encode") as pool:
        pending: Future[E] | None = None
        for chunk in chunks:
            rendered = render(chunk)
            if pending is not None:
                yield pending.result()
            pending = pool.submit(encode, rendered)
        if pending is not None:
            yield pending.result()
