"""The rows the token stages (pt, sft) train on: their records encoded, and packed when data.packing asks;
and the held-out examples, encoded alike to evaluate on.

The stage says how its records encode (conversations with their template, or plain texts); everything
after that is the same for both. `ftc.runtime.data.prepared` keeps what this makes in the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftc.runtime.data.packing import pack_token_rows, packing_summary
from ftc.runtime.data.token_rows import TokenRows
from ftc.spec.models import DataSection


@dataclass(frozen=True)
class PreparedRows:
    train: TokenRows
    evaluated: TokenRows | None  # None without held-out records
    lines: list[str]  # what the run says about them, once more when they come from the cache
    records: int  # records read, training and held out


def prepare_rows(
    data: DataSection,
    records: Sequence[Any],
    held_out: Sequence[Any],
    encode: Callable[[Sequence[Any]], Any],
    describe: Callable[[Any], str],
) -> PreparedRows:
    """`encode(records)` holds `.rows`, described in one line by `describe`; packed when data.packing asks."""
    encoded = encode(records)
    lines = [describe(encoded)]
    rows = encoded.rows
    if data.packing:
        rows = pack_token_rows(encoded.rows, data.cutoff_len)
        lines.append(packing_summary(encoded.rows, rows, data.cutoff_len))
    evaluated = encode(held_out).rows if held_out else None
    if evaluated is not None:
        lines.append(f"evaluation: {len(evaluated)} held-out examples, at every logging step")
    return PreparedRows(rows, evaluated, lines, len(records) + len(held_out))
