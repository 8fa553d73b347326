"""Write a run folder whole or not at all: build it beside its final place, then rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ftc.errors import FtcError


def write_run_folder(run_dir: Path, files: dict[str, str], executable: set[str], overwrite: bool) -> None:
    """Create `run_dir` holding `files`; an existing folder is replaced only when `overwrite`."""
    if run_dir.exists() and not overwrite:
        raise FtcError(
            f"run folder {run_dir} already exists",
            "ftc launch --resume continues its run from the newest checkpoint; --overwrite replaces it; "
            "or set output.dir to a new folder",
        )
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".staging", dir=run_dir.parent))
    try:
        for name, content in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())  # the rename below must not publish unwritten data
            if name in executable:
                target.chmod(0o755)
        staging.chmod(0o755)
        _swap_into_place(staging, run_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, run_dir: Path) -> None:
    if not run_dir.exists():
        staging.rename(run_dir)
        return
    # Move the old folder aside first, so a crash leaves either the old or the new one in place.
    retired = run_dir.with_name(f".{run_dir.name}.retired-{os.getpid()}")
    run_dir.rename(retired)
    staging.rename(run_dir)
    shutil.rmtree(retired, ignore_errors=True)
