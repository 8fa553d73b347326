"""`ftc cache ls|prune`: the prepared-data cache (`ftc.data_cache`) as a table, and what pruning it frees.

The root is the one a run would use: a spec's data.cache_dir (relative to the spec's folder, as the launcher
anchors it), a folder given with --dir, or else the default ($FTC_CACHE/prepared, or beside the hub cache).
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ftc.data_cache.entries import WRITING_GRACE_S, Entry, entries, prune
from ftc.data_cache.key import cache_root, default_cache_root
from ftc.errors import FtcError
from ftc.spec.resolve import names_a_local_path

SHORT_KEY = 12
# What `ls --format json` says of an entry from its meta.json; `lines` and `parts` stay in the file.
LISTED_META = ("stage", "datasets", "records", "rows", "eval_rows", "tokens", "seconds", "created", "ftc")
UNFINISHED = "unfinished"
SIZE_UNITS = ("KiB", "MiB", "GiB")


def run_cache(
    action: str,
    spec: Path | None = None,
    folder: Path | None = None,
    older_than_days: float | None = None,
    everything: bool = False,
    output_format: str | None = None,
) -> int:
    _check_options(action, spec, folder, older_than_days, everything, output_format)
    root = chosen_root(spec, folder)
    if action == "ls":
        list_entries(root, output_format or "text")
    else:
        prune_entries(root, older_than_days, everything)
    return 0


def _check_options(
    action: str,
    spec: Path | None,
    folder: Path | None,
    older_than_days: float | None,
    everything: bool,
    output_format: str | None,
) -> None:
    if spec is not None and folder is not None:
        raise FtcError("--spec and --dir both name the cache root", "give one: the spec's data.cache_dir or a folder")
    if action == "ls" and (older_than_days is not None or everything):
        raise FtcError(
            "--older-than and --all choose what `ftc cache prune` removes; `ls` takes neither",
            "ftc cache prune --older-than DAYS (or --all)",
        )
    if action == "prune" and output_format is not None:
        raise FtcError("--format is for `ftc cache ls`", "drop --format; prune says what it removed in lines")
    if older_than_days is not None:
        if not math.isfinite(older_than_days) or older_than_days < 0:
            raise FtcError(
                f"--older-than {older_than_days:g}: days must be a number of 0 or more",
                "e.g. --older-than 30 removes entries no run has used for 30 days",
            )
        if everything:
            raise FtcError("--older-than and --all both say what to remove", "give one: --all removes every entry")


def chosen_root(spec: Path | None, folder: Path | None) -> Path:
    if folder is not None:
        return folder.expanduser()
    if spec is None:
        return default_cache_root()
    from ftc.spec import load_spec
    from ftc.spec.resolve import resolve_paths

    loaded = load_spec(spec)
    return cache_root(resolve_paths(loaded.spec, loaded.base_dir, is_local=Path.exists))


def list_entries(root: Path, output_format: str) -> None:
    found = entries(root)
    if output_format == "json":
        print(json.dumps([_listed(entry) for entry in found], indent=2, ensure_ascii=False))
        return
    if not found:
        print(f"no prepared data in {root}" + ("" if root.is_dir() else " (the folder does not exist)"))
        return
    from rich.table import Table

    from ftc.cli.output import console

    table = Table(title=f"ftc cache · {root}", title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("stage")
    table.add_column("datasets")
    for name in ("records", "rows", "tokens", "size"):
        table.add_column(name, justify="right")
    table.add_column("last used")
    now = time.time()
    for entry in found:
        table.add_row(*_row(entry, now))
    out = console()
    out.print(table)
    unfinished = sum(not entry.complete for entry in found)
    complete = _counted(len(found) - unfinished, "entry", "entries")
    if unfinished:
        complete += f" and {_counted(unfinished, f'{UNFINISHED} preparation', f'{UNFINISHED} preparations')}"
    out.print(f"{complete}, {human_size(sum(entry.size for entry in found))} in {root}")


def _counted(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _row(entry: Entry, now: float) -> tuple[str, ...]:
    key = entry.key[:SHORT_KEY]
    age = age_text(now - entry.modified)
    size = human_size(entry.size)
    if entry.meta is None:
        return key, f"[yellow]{UNFINISHED}[/yellow]", "", "", "", "", size, age
    meta = entry.meta
    datasets = ", ".join(_dataset_name(str(path)) for path in meta.get("datasets", []))
    counts = (_count(meta.get(name)) for name in ("records", "rows", "tokens"))
    return key, str(meta.get("stage", "")), datasets, *counts, size, age


def _dataset_name(written: str) -> str:
    """A local file by its name (the entry holds it absolute); a hub id as written."""
    return Path(written).name if names_a_local_path(written) else written


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else ""


def _listed(entry: Entry) -> dict[str, Any]:
    meta = entry.meta or {}
    return {
        "key": entry.key,
        "path": str(entry.path),
        "complete": entry.complete,
        "size_bytes": entry.size,
        "last_used": datetime.fromtimestamp(entry.modified).astimezone().isoformat(timespec="seconds"),
        **{name: meta.get(name) for name in LISTED_META},
    }


def prune_entries(root: Path, older_than_days: float | None, everything: bool) -> None:
    removed = prune(root, older_than_days, everything)
    if not removed:
        print(f"nothing to prune in {root}")
        if older_than_days is None and not everything:
            print(
                f"without --older-than DAYS or --all, only {UNFINISHED} preparations older than "
                f"{age_text(WRITING_GRACE_S).removesuffix(' ago')} are removed"
            )
        return
    now = time.time()
    for entry in removed:
        what = f"{UNFINISHED} preparation" if entry.meta is None else f"{entry.meta.get('stage', '?')} entry"
        used = age_text(now - entry.modified)
        print(f"removed {entry.key[:SHORT_KEY]} ({what}, {human_size(entry.size)}, last used {used})")
    freed = sum(entry.size for entry in removed)
    print(f"freed {human_size(freed)} ({freed:,} bytes) in {root}")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled, unit = size / 1024, 0
    while scaled >= 1024 and unit < len(SIZE_UNITS) - 1:
        scaled, unit = scaled / 1024, unit + 1
    return f"{scaled:.1f} {SIZE_UNITS[unit]}"


def age_text(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{int(seconds // length)} {unit} ago"
    return "just now"
