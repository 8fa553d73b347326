"""SPEC.lock on disk: written whole or not at all, read back with located errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from ftc.errors import FtcError
from ftc.fs import atomic_write_text, remove_stale_temporaries

HEADER = (
    "# ftc lockfile: the run as resolved when it was locked. Written by `ftc lock`; `ftc verify` and\n"
    "# `ftc launch --locked` refuse to run when anything here has changed. Lock again rather than edit it.\n\n"
)


def lock_path(spec_path: Path) -> Path:
    return spec_path.with_name(spec_path.name + ".lock")


def render_lock(document: dict[str, Any]) -> str:
    return HEADER + tomli_w.dumps(document)


def write_lock(path: Path, document: dict[str, Any]) -> None:
    remove_stale_temporaries(path)  # left by a writer that was killed; never the lockfile itself
    atomic_write_text(path, render_lock(document))


def read_lock(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FtcError(f"{path} not found", f"write it with `ftc lock {path.name.removesuffix('.lock')}`")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise FtcError(f"{path} is not a valid lockfile: {error}", "lock the spec again with `ftc lock`") from None
