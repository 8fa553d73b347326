"""Python's cycle collector paused while a whole dataset is read or prepared.

Reading a dataset makes millions of small dicts, lists and strings that stay alive. Each time enough
objects have been allocated the collector walks every live one, the records read so far included, so
a pass over a large dataset spends a quarter of its time or more in it (`benchmarks/data_prep.py`).
Records and rows hold no reference cycles: reference counting frees what a pass drops, and the
collector runs again, as it was before, once the pass ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    if not gc.isenabled():  # paused already, by an enclosing pass or by the caller: theirs to resume
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
