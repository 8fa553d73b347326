"""Weighted mixing and holding out: exact proportions, the same choice for the same seed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import islice

import pytest

from ftc.runtime.data.mixing import hold_out, interleave, mix, shares


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [(10, [1, 1], [5, 5]), (10, [3, 1], [8, 2]), (7, [1, 1, 1], [3, 2, 2]), (5, [0.5, 0.25, 0.25], [3, 1, 1])],
)
def test_shares_are_whole_numbers_in_proportion_that_add_up(total, weights, expected):
    assert shares(total, weights) == expected


def test_a_mixture_has_exact_counts_repeating_a_small_source_and_sampling_a_large_one():
    small, large = [f"s{i}" for i in range(3)], [f"l{i}" for i in range(100)]
    mixed = mix([small, large], [1, 1], size=20, seed=0)
    counts = Counter(item[0] for item in mixed)
    assert counts == {"s": 10, "l": 10}
    assert sorted(Counter(item for item in mixed if item[0] == "s").values()) == [3, 3, 4]  # 3 whole + 1 sampled
    assert len(set(item for item in mixed if item[0] == "l")) == 10  # sampled without replacement


def test_without_a_size_the_mixture_is_as_large_as_the_sources_together():
    mixed = mix([list(range(10)), list(range(100, 130))], [3, 1], size=None, seed=1)
    assert len(mixed) == 40
    assert sum(item < 100 for item in mixed) == 30


def test_the_same_seed_gives_the_same_mixture_and_another_seed_another():
    sources = [list(range(50)), list(range(100, 150))]
    assert mix(sources, [2, 1], 30, seed=7) == mix(sources, [2, 1], 30, seed=7)
    assert mix(sources, [2, 1], 30, seed=7) != mix(sources, [2, 1], 30, seed=8)


def test_a_streamed_mixture_draws_in_proportion_and_restarts_a_source_that_runs_out():
    opened = Counter()

    def source(name, size):
        def open_source():
            opened[name] += 1
            return (f"{name}{i}" for i in range(size))

        return open_source

    drawn = list(interleave([source("a", 5), source("b", 1000)], [1, 3], size=4000, seed=0))
    share_a = sum(item.startswith("a") for item in drawn) / len(drawn)
    assert len(drawn) == 4000 and 0.22 < share_a < 0.28
    assert opened["a"] > 100 and opened["b"] >= 3  # "a" restarted each time it ran out
    assert list(islice(interleave([source("a", 5), source("b", 9)], [1, 3], None, seed=3), 50)) == list(
        islice(interleave([source("a", 5), source("b", 9)], [1, 3], None, seed=3), 50)
    )


def test_a_streamed_mixture_without_a_size_ends_once_every_source_was_read_through():
    drawn = list(interleave([lambda: iter(range(3)), lambda: iter(range(100, 104))], [1, 1], None, seed=0))
    assert set(range(3)) | set(range(100, 104)) <= set(drawn)


@dataclass(frozen=True)
class Item:
    where: str


def test_hold_out_takes_the_ratio_of_records_and_keeps_copies_of_one_record_together():
    items = [Item(f"r{i}") for i in range(20)] + [Item("r0"), Item("r1")]  # copies, as a mixture makes
    train, evaluated = hold_out(items, 0.25, seed=0)
    assert len({item.where for item in evaluated}) == 5
    assert not {item.where for item in train} & {item.where for item in evaluated}
    assert len(train) + len(evaluated) == len(items)
    assert hold_out(items, 0.25, seed=0) == (train, evaluated)
    assert hold_out(items, 0.25, seed=1) != (train, evaluated)
