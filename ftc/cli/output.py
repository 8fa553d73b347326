"""Printing for the CLI: user errors without tracebacks, and a shared rich console."""

from __future__ import annotations

import sys
from functools import lru_cache

from ftc.errors import FtcError


@lru_cache(maxsize=1)
def console():
    from rich.console import Console

    return Console(highlight=False)


def print_error(error: FtcError) -> None:
    from ftc.spec.diagnostics import SpecError

    if isinstance(error, SpecError):
        for diagnostic in error.diagnostics:
            print(diagnostic.format(), file=sys.stderr)
        return
    print(f"error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
