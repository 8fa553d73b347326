"""The rows the token stages (pt, sft) train on: their records encoded, and packed when data.packing asks,
or streamed while training runs; and the held-out examples, encoded alike to evaluate on.

The stage says how its records encode (conversations with their template, or plain texts); everything
after that is the same for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ftc.runtime.data.packing import pack_examples, packing_summary
from ftc.runtime.data.streaming import describe_stream
from ftc.spec.models import DataSection

Example = dict[str, list[int]]


def training_rows(
    data: DataSection,
    records: Sequence[Any] | None,
    held_out: Sequence[Any],
    encode: Callable[[Sequence[Any]], Any],
    describe: Callable[[Any], str],
    stream: Callable[[], Any],
) -> tuple[Any, list[Example] | None]:
    """(rows, evaluated). `records` None means data.streaming: `stream()` gives the rows as a dataset that
    reads them while training runs. Otherwise `encode(records)` holds `.examples`, described in one line
    by `describe`. `evaluated` is None without held-out records."""
    if records is None:
        rows = stream()
        print(describe_stream(data), flush=True)
    else:
        encoded = encode(records)
        print(describe(encoded), flush=True)
        rows = encoded.examples
        if data.packing:
            rows = pack_examples(encoded.examples, data.cutoff_len)
            print(packing_summary(encoded.examples, rows, data.cutoff_len), flush=True)
    evaluated = encode(held_out).examples if held_out else None
    if evaluated:
        print(f"evaluation: {len(evaluated)} held-out examples, at every logging step", flush=True)
    return rows, evaluated
