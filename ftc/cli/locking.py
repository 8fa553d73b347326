"""`ftc lock`, `ftc verify` and `ftc launch --locked`: write SPEC.lock, and compare a run against it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ftc.cli.output import console
from ftc.compiler.plan import Plan
from ftc.errors import FtcError
from ftc.lock.build import current_lock
from ftc.lock.drift import drift
from ftc.lock.files import lock_path, read_lock, write_lock
from ftc.lock.hub_pins import how_to_pin_all, pin_notes, unpinned_inputs
from ftc.lock.images import IMAGE_HASH_LIMIT, PER_IMAGE
from ftc.spec.loader import LoadedSpec


def write_spec_lock(loaded: LoadedSpec, plan: Plan) -> Path:
    document = current_lock(loaded, plan, writing=True)
    path = lock_path(loaded.path)
    write_lock(path, document)
    inputs = document["inputs"].values()
    files = sum(len(entry.get("files", {})) for entry in inputs)
    console().print(
        f"[green]locked[/green] {path}: plan for {plan.hardware.label()}, {len(document['versions'])} versions, "
        f"{files} input file(s) hashed, {len(document['run']['environment'])} environment name(s)"
    )
    for key, entry in document["inputs"].items():
        if "images" in entry:
            console().print(f"  {key}: {_images_locked(entry)}", markup=False)
    notes, warnings = pin_notes(document["inputs"])
    for note in notes:
        console().print(f"  {note}", markup=False)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return path


def _images_locked(entry: dict[str, Any]) -> str:
    count = entry["image_count"]
    if entry["images"] == PER_IMAGE:
        return f"{count:,} image(s) hashed one by one"
    return (
        f"{count:,} images, over the {IMAGE_HASH_LIMIT:,} hashed one by one: a manifest (path, size, mtime) of "
        f"{len(entry['image_folders'])} image folder(s) locked instead"
    )


def verify_lock(loaded: LoadedSpec, plan: Plan) -> int:
    locked, changes = _changes(loaded, plan)
    path = lock_path(loaded.path)
    if not changes:
        console().print(f"[green]ok[/green]: the run matches {path}")
        unpinned = unpinned_inputs(locked.get("inputs") or {})
        if unpinned:
            console().print(f"  note: it holds no commit for {', '.join(unpinned)}, which can change", markup=False)
        return 0
    _print_drift(path, changes)
    return 1


def require_locked(loaded: LoadedSpec, plan: Plan, allow_unpinned: bool = False) -> None:
    locked, changes = _changes(loaded, plan)
    path = lock_path(loaded.path)
    if changes:
        _print_drift(path, changes)
        raise FtcError(
            f"the run differs from {path} in {len(changes)} place(s); --locked refuses to start it",
            f"undo the changes, or accept them with `ftc lock {loaded.path}`",
        )
    # No drift proves nothing about an input locked without a commit: its branch can move under the run.
    unpinned = unpinned_inputs(locked.get("inputs") or {})
    if unpinned and not allow_unpinned:
        raise FtcError(
            f"{path} holds no commit for {', '.join(unpinned)}, so --locked cannot tell the run will read the "
            "same files; it refuses to start it",
            f"{how_to_pin_all(unpinned)}; or pass --allow-unpinned to run anyway",
        )


def locked_hardware(spec_path: Path) -> tuple[str, int]:
    """The hardware label and node count a lock was made for, for `verify` to plan for the same."""
    hardware = read_lock(lock_path(spec_path)).get("hardware")
    try:
        return f"{hardware['devices_per_node']}x{hardware['name']}", int(hardware["nodes"])
    except (TypeError, KeyError, ValueError):
        raise FtcError(f"{lock_path(spec_path)} has no valid [hardware] table", "lock the spec again") from None


def _changes(loaded: LoadedSpec, plan: Plan) -> tuple[dict[str, Any], list[str]]:
    """The lock as recorded, and how the run as it would be now differs from it."""
    locked = read_lock(lock_path(loaded.path))
    return locked, drift(locked, current_lock(loaded, plan))


def _print_drift(path: Path, changes: list[str]) -> None:
    out = console()
    out.print(f"[red]drift[/red] from {path}:")
    for change in changes:
        out.print(f"  {change}", markup=False)
