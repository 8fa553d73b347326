"""The seal that says a checkpoint folder was written whole: ftc-complete.json, written last.

A process killed while saving (preemption past its grace time, a lost node, a full disk) leaves a
folder that looks like a checkpoint. The trainer's own files do not tell: it writes trainer_state.json
after the weights and optimizer but before rotating old checkpoints, and nothing is fsync'd, so after
a lost node any file may be short. The seal is written after every rank's files are on disk (fsync'd,
then a barrier, then rank 0 seals), and lists each file with its size, so that a file cut or removed
later is noticed too. Sizes, not hashes: hashing gigabytes of optimizer state at every save would cost
minutes, and a cut file changes size.

Importing this module is cheap: the launcher reads seals too (`ftc launch --resume`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftc.fs import atomic_write_text

SEAL_FILE = "ftc-complete.json"
SEAL_FORMAT = 1


def files_in(folder: Path) -> dict[str, int]:
    """Every file under `folder` (the seal itself aside), by its path inside it, with its size."""
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != SEAL_FILE
    }


def fsync_folder(folder: Path) -> None:
    """Flush every file under `folder`, and the folders' own entries, to the disk.

    Every rank calls it on the checkpoint, so each flushes what it wrote (a flush of a file another
    process wrote costs nothing when it is already on disk).
    """
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            _fsync(path, os.O_RDONLY)
    for directory in [*(path for path in folder.rglob("*") if path.is_dir()), folder, folder.parent]:
        fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Flush a folder's entries (the names created or renamed in it) to the disk."""
    _fsync(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path: Path, flags: int) -> None:
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:  # a rank removed a temporary file of its own meanwhile
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_seal(folder: Path, step: int) -> None:
    """Seal `folder` as checkpoint `step`: call it once every file in it is written and flushed."""
    seal = {"format": SEAL_FORMAT, "step": step, "files": files_in(folder)}
    atomic_write_text(folder / SEAL_FILE, json.dumps(seal, indent=1) + "\n")  # fsync'd, then renamed in
    fsync_directory(folder)  # the rename itself on disk


def is_sealed(folder: Path) -> bool:
    return (folder / SEAL_FILE).is_file()


def seal_problem(folder: Path, step: int) -> str | None:
    """Why the sealed `folder` is not whole checkpoint `step` (None: it is); the seal must exist."""
    try:
        seal = json.loads((folder / SEAL_FILE).read_text(encoding="utf-8"))
        sealed_step, listed = seal["step"], dict(seal["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its seal {SEAL_FILE} is unreadable ({error})"
    if sealed_step != step:
        return f"its seal is for step {sealed_step}"
    for name, size in listed.items():
        path = folder / name
        if not path.is_file():
            return f"{name}, listed in its seal, is missing"
        if path.stat().st_size != size:
            return f"{name} is {path.stat().st_size} bytes, its seal says {size}"
    return None
