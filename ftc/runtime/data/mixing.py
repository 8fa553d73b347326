"""Mixing several datasets by weight, and holding examples out for evaluation; all seeded, all exact.

Weights are sampling proportions. Loaded whole, a mixture of `size` examples (default: the
datasets' sizes summed) gives dataset i exactly round(size × wᵢ / Σw) examples (largest remainder,
so the counts add up): a dataset asked for more than it has is repeated whole and topped up by a
sample, one asked for fewer is sampled without replacement. Streamed, each example is drawn from
dataset i with probability wᵢ / Σw; a dataset that runs out starts over, and the pass ends after
`size` examples or once every dataset has been read through.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def shares(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights`, in whole numbers that add up to `total`."""
    exact = [total * weight / sum(weights) for weight in weights]
    counts = [math.floor(share) for share in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def mix(sources: list[list[T]], weights: list[float], size: int | None, seed: int) -> list[T]:
    counts = shares(size if size is not None else sum(len(source) for source in sources), weights)
    rng = random.Random(seed)
    mixed: list[T] = []
    for source, count in zip(sources, counts, strict=True):
        repeats, rest = divmod(count, len(source))
        mixed += source * repeats + rng.sample(source, rest)
    rng.shuffle(mixed)  # sources interleaved, so a run cut short by max_steps still sees the mixture
    return mixed


def interleave(
    sources: list[Callable[[], Iterable[T]]], weights: list[float], size: int | None, seed: int
) -> Iterator[T]:
    """Streamed mixture: `sources` are re-openable (a dataset that runs out starts over)."""
    rng = random.Random(seed)
    iterators = [iter(open_source()) for open_source in sources]
    finished = [False] * len(sources)
    drawn = 0
    while size is None or drawn < size:
        i = rng.choices(range(len(sources)), weights=weights)[0]
        try:
            item = next(iterators[i])
        except StopIteration:
            finished[i] = True
            if size is None and all(finished):
                return
            iterators[i] = iter(sources[i]())
            item = next(iterators[i])  # an empty source was refused when it was first opened
        yield item
        drawn += 1


def hold_out(items: list[Any], ratio: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(train, eval) with round(ratio × records) records in eval, each side in its original order.

    Items are grouped by the record they came from (`where`), so the copies a mixture made of one
    record all land on the same side and nothing evaluated was trained on.
    """
    records = list(dict.fromkeys(item.where for item in items))
    held = min(len(records), max(1, round(len(records) * ratio)))
    evaluated = set(random.Random(seed).sample(records, held))
    return [item for item in items if item.where not in evaluated], [item for item in items if item.where in evaluated]
