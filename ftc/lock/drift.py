"""What changed between the locked run and the run as it would be now, in words a person reads."""

from __future__ import annotations

from typing import Any

from ftc.lock.hub_pins import short

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key → scalar, or list of scalars (compared whole)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{_key(key)}" if prefix else _key(key)))
        return flat
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def _key(key: str) -> str:
    return key if key and set(key) <= _BARE else f'"{key}"'


def drift(locked: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One line per difference, in the lock's order; empty when nothing drifted."""
    old, new = flatten(locked), flatten(current)
    lines = []
    for key in [*old, *(key for key in new if key not in old)]:
        if old.get(key, _ABSENT) != new.get(key, _ABSENT):
            lines.append(_describe(key, old.get(key, _ABSENT), new.get(key, _ABSENT), current, locked))
    # The prepared data's key follows from the inputs, the spec and ftc's version: said only when nothing
    # else explains it.
    derived = _describe(_DATA_KEY, old.get(_DATA_KEY, _ABSENT), new.get(_DATA_KEY, _ABSENT), current, locked)
    return [line for line in lines if line != derived] if len(lines) > 1 else lines


_DATA_KEY = "run.data_cache_key"


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _describe(key: str, old: Any, new: Any, current: dict[str, Any], locked: dict[str, Any]) -> str:
    section, _, rest = key.partition(".")
    if section == "versions":
        return f"{rest} {_show(old)} → {_show(new)}"
    if section == "inputs" and rest.endswith(".commit"):
        entry = rest.removesuffix(".commit").strip('"')
        written = ((current.get("inputs") or {}) | (locked.get("inputs") or {})).get(entry, {}).get("path", entry)
        return _commit_change(f"{entry}: {written}", old, new)
    if section == "inputs" and _input_part(rest)[1] in _IMAGE_PARTS:
        return _image_change(rest, old, new, (current.get("inputs") or {}) | (locked.get("inputs") or {}))
    if section == "inputs" and ".files." in rest:
        entry, _, file = rest.partition(".files.")
        inputs = (current.get("inputs") or {}) | (locked.get("inputs") or {})
        written = inputs.get(entry.strip('"'), {}).get("path", entry)
        where = f"{written}/{file.strip(chr(34))}" if written and not written.endswith(file.strip('"')) else written
        if old is _ABSENT:
            return f"{where}: new file"
        if new is _ABSENT:
            return f"{where}: file gone"
        return f"{where} sha256 changed"
    if key == _DATA_KEY:
        return (
            f"the prepared data's key {_show(old)} → {_show(new)}: the data files, the tokenizer, a [data] setting "
            "or ftc's data preparation changed what the run trains on"
        )
    if old is _ABSENT:
        return f"{key} added: {_show(new)}"
    if new is _ABSENT:
        return f"{key} removed (was {_show(old)})"
    return f"{key} {_show(old)} → {_show(new)}"


_IMAGE_PARTS = frozenset(("image_files", "image_folders", "missing_images", "image_count", "images"))


def _input_part(rest: str) -> tuple[str, str, str]:
    """(input key, its field, what follows) of a flattened key under [inputs]; input keys are always quoted."""
    if not rest.startswith('"'):
        return rest, "", ""
    entry, _, after = rest[1:].partition('".')
    part, _, name = after.partition(".")
    return entry, part, name.strip('"')


def _image_change(rest: str, old: Any, new: Any, inputs: dict[str, Any]) -> str:
    """A dataset's images (`ftc.lock.images`): an image by the name its records give it, or a folder."""
    entry, part, name = _input_part(rest)
    written = inputs.get(entry, {}).get("path", entry)
    if part == "image_files":
        if old is _ABSENT:
            return f"image {name} (named by {written}): new image"
        if new is _ABSENT:
            return f"image {name} (named by {written}): image gone"
        return f"image {name} (named by {written}): sha256 changed"
    if part == "image_folders":
        if old is _ABSENT or new is _ABSENT:
            return f"image folder {name} (of {written}): {'now holds images' if old is _ABSENT else 'holds none now'}"
        return f"image folder {name} (of {written}): a file in it was added, removed, resized or modified"
    if part == "missing_images":
        return f"{written} names images that are gone: {', '.join(new if isinstance(new, list) else [])}"
    if part == "image_count":
        return f"{written} names {_show(old)} → {_show(new)} distinct images"
    return f"{written}'s images locked {_show(old)} → {_show(new)}"


def _commit_change(input_named: str, old: Any, new: Any) -> str:
    """A hub input's commit, as the lock recorded it and as the Hugging Face cache resolves it now."""
    if old is _ABSENT:
        return f"{input_named} was locked without a commit; it now resolves to {short(new)}"
    if new is _ABSENT:
        return f"{input_named} was locked at commit {short(old)}; the Hugging Face cache holds no commit of it now"
    return f"{input_named} was locked at commit {short(old)}; the Hugging Face cache now holds {short(new)}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    return str(value)
