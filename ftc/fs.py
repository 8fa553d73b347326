"""Writes that never leave a half-written file: temporary file beside the target, fsync, rename."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files of `path` that a killed writer left behind (a SIGKILL skips every cleanup)."""
    for leftover in path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*.tmp"):
        leftover.unlink(missing_ok=True)
