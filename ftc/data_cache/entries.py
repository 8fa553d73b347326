"""The entries of the prepared-data cache, listed and pruned for `ftc cache ls|prune`.

An entry is a folder named by its key (`ftc.data_cache.key`) with Arrow files and `meta.json`, written last;
a folder whose name starts with `TEMPORARY` is a preparation that has not finished (or was killed).
Beside them, a `KEY.lock` file for each key a run has prepared; pruning a key's last folder removes it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

META = "meta.json"
TEMPORARY = ".tmp-"
LOCK = ".lock"  # `KEY.lock` beside the entry: the file lock under which one process prepares it
WRITING_GRACE_S = 3600  # an unfinished entry younger than this may still be being written: prune keeps it


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int  # bytes
    modified: float  # seconds since the epoch: when a run last wrote or read it
    meta: dict[str, Any] | None  # None: a preparation that never finished

    @property
    def complete(self) -> bool:
        return self.meta is not None

    @property
    def key(self) -> str:
        """The key the entry is (or was being prepared) for: an unfinished one is named `.tmp-KEY-PID`."""
        if not self.path.name.startswith(TEMPORARY):
            return self.path.name
        return self.path.name[len(TEMPORARY) :].rpartition("-")[0] or self.path.name[len(TEMPORARY) :]


def complete(entry: Path) -> bool:
    """Whether the entry is there whole: its meta.json is written last, inside the folder that is renamed."""
    return (entry / META).is_file()


def entries(root: Path) -> list[Entry]:
    """Every entry and unfinished preparation under `root`, newest first."""
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        meta = None
        if not folder.name.startswith(TEMPORARY) and (folder / META).is_file():
            try:
                meta = json.loads((folder / META).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = None
        size = sum(file.stat().st_size for file in folder.rglob("*") if file.is_file())
        found.append(Entry(folder, size, (folder / META).stat().st_mtime if meta else folder.stat().st_mtime, meta))
    return sorted(found, key=lambda entry: entry.modified, reverse=True)


def prune(root: Path, older_than_days: float | None = None, everything: bool = False) -> list[Entry]:
    """Remove unfinished preparations, plus entries unused for `older_than_days` (or all): what was removed.
    An unfinished one younger than `WRITING_GRACE_S` may still be being written, and is kept unless `everything`."""
    now = time.time()
    removed, kept = [], []
    for entry in entries(root):
        if entry.complete:
            stale = everything or (older_than_days is not None and now - entry.modified > older_than_days * 86400)
        else:
            stale = everything or now - entry.modified > WRITING_GRACE_S
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry)
        else:
            kept.append(entry)
    # A key's lock goes with its last folder; while one is kept, a run may still take that lock.
    for key in {entry.key for entry in removed} - {entry.key for entry in kept}:
        (root / f"{key}{LOCK}").unlink(missing_ok=True)
    return removed
