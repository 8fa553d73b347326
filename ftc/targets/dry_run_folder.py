"""A run folder a dry run wrote is launched as it is: `ftc launch --dry-run`, look, then `ftc launch`.

Every folder `ftc launch` writes holds LAUNCH_FILE: the target that wrote it, whether as a dry run,
and the files it wrote. A folder is taken over only while it is exactly that, a dry run's files and
nothing else: a checkpoint, metrics.json, fingerprint.json, a scheduler's job record or log is a sign
that the runtime ran (or runs) there, and such a folder keeps the usual refusal. It is taken over only
if this launch would write the same files: the same resolved spec, plan and target, the same scripts.
Otherwise the refusal names what differs, by key, and how to replace the folder.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from ftc.errors import FtcError
from ftc.fs import atomic_write_text
from ftc.targets.base import Rendered

LAUNCH_FILE = "launch.json"
SHOWN = 10  # differences listed; the rest are counted
_UNSET = object()


def launch_record(target: str, rendered: Rendered, dry_run: bool) -> dict[str, str]:
    """LAUNCH_FILE, to be written with the rendered files."""
    return {LAUNCH_FILE: _record_text({"target": target, "dry_run": dry_run, "files": sorted(rendered.files)})}


def reuse_dry_run(run_dir: Path, target: str, rendered: Rendered, dry_run: bool) -> bool:
    """Whether `run_dir` is an untouched dry run of this same launch, to be launched as it is (and from now on
    recorded as launched, unless this is a dry run again). False where it is no untouched dry run: the caller
    writes the folder as usual, refusing one that exists. Raises where it is the dry run of another launch."""
    record = untouched_dry_run(run_dir)
    if record is None:
        return False
    changes = differences(run_dir, record, target, rendered)
    if changes:
        listed = "; ".join(changes[:SHOWN]) + (f"; and {len(changes) - SHOWN} more" if len(changes) > SHOWN else "")
        raise FtcError(
            f"run folder {run_dir} holds a dry run that differs from this launch: {listed}",
            "--overwrite replaces it with this launch's files; or set output.dir to a new folder",
        )
    if not dry_run:
        atomic_write_text(run_dir / LAUNCH_FILE, _record_text({**record, "dry_run": False}))
    return True


def untouched_dry_run(run_dir: Path) -> dict[str, Any] | None:
    """The folder's LAUNCH_FILE if a dry run wrote it and nothing was added, changed in kind or removed since."""
    try:
        record = json.loads((run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no folder, a folder from before LAUNCH_FILE, or not ftc's
        return None
    if not (isinstance(record, dict) and record.get("dry_run") is True and isinstance(record.get("files"), list)):
        return None
    written = {LAUNCH_FILE, *map(str, record["files"])}
    folders = {parent.as_posix() for name in written for parent in Path(name).parents if parent != Path(".")}
    found = set()
    for path in run_dir.rglob("*"):  # stops at the first stranger: a trained folder may hold many files
        name = path.relative_to(run_dir).as_posix()
        if not (name in written and path.is_file() or name in folders and path.is_dir()):
            return None
        found.add(name)
    return record if found == written | folders else None


def differences(run_dir: Path, record: dict[str, Any], target: str, rendered: Rendered) -> list[str]:
    """What this launch would write differently, by key for the spec and the plan, by name for the other files."""
    same_target = record.get("target") == target
    changes = [] if same_target else [f"target {record.get('target')} → {target}"]
    # The spec first: its keys are the causes, the plan's and the scripts' changes follow from them.
    for name in sorted(set(record["files"]) | set(rendered.files), key=lambda name: (name != "spec.toml", name)):
        before, now = _read(run_dir / name), rendered.files.get(name)
        if before == now or before is not None and now is not None and _code(before) == _code(now):
            continue
        if name == "spec.toml" and before is not None and now is not None:
            changes += _key_changes(_parsed(tomllib.loads, before), _parsed(tomllib.loads, now), "")
        elif name == "plan.json" and before is not None and now is not None:
            changes += _key_changes(_parsed(json.loads, before), _parsed(json.loads, now), "plan")
        elif same_target:  # another target's scripts differ anyway: naming them would only add noise
            state = "would be new" if before is None else "would not be written" if now is None else "differs"
            changes.append(f"{name} {state}")
    return changes


def _key_changes(before: Any, now: Any, prefix: str) -> list[str]:
    old, new = _flat(before, prefix), _flat(now, prefix)
    keys = list(new) + [key for key in old if key not in new]
    changed = [key for key in keys if old.get(key, _UNSET) != new.get(key, _UNSET)]
    return [f"{key} {_shown(old.get(key, _UNSET))} → {_shown(new.get(key, _UNSET))}" for key in changed]


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """Tables as dotted keys (train.learning_rate), lists of tables by index (data.datasets[0].path)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return {
            key: inner for index, item in enumerate(value) for key, inner in _flat(item, f"{prefix}[{index}]").items()
        }
    return {prefix: value}


def _code(text: str) -> list[str]:
    """A script without its "# " comments: their header names the spec as it was typed (job.toml, ./job.toml),
    which may differ between two launches of the same spec. Directives (#!, #SBATCH) have no space and stay."""
    return [line for line in text.splitlines() if not line.startswith("# ")]


def _shown(value: Any) -> str:
    return "(unset)" if value is _UNSET else repr(value)


def _parsed(parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ValueError:  # edited by hand into something unreadable: compared as text, which differs
        return {"(unreadable)": text}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _record_text(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2) + "\n"
