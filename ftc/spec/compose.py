"""Composition: a spec that `extends` a base file, and `--set key=value` overrides on top.

The result is one plain document plus, for every key path in it, where that value was written
(file and line, or `--set`), so a bad value is reported where the user can fix it: in the base,
in the child, or on the command line.

Merging is by table: a child's table merges into the base's key by key; any other value,
arrays (of tables) included, replaces the base's value whole. Replacing arrays keeps a child
from silently inheriting datasets it never listed.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftc.spec.diagnostics import Code, Diagnostic, SpecError, toml_syntax_diagnostic
from ftc.spec.locate import KeyPath, Origin, locate_keys

EXTENDS = "extends"
OVERRIDE_SOURCE = "--set"


@dataclass
class Composed:
    data: dict[str, Any]
    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)  # every file read, base first


Reader = Callable[[Path], str]


def compose_file(path: Path, read: Reader) -> Composed:
    """Read `path` and, recursively, the files it extends. `read` raises SpecError for unreadable files."""
    return _compose(path, read, chain=())


def document(text: str, file: str) -> Composed:
    """One TOML text, on its own: its data and where each key was written."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError([toml_syntax_diagnostic(file, error, text)]) from None
    positions = locate_keys(text)
    origins = {path: Origin(file, where.line, where.column) for path, where in positions.items()}
    return Composed(data, origins)


def _compose(path: Path, read: Reader, chain: tuple[Path, ...]) -> Composed:
    child = document(read(path), str(path))
    child.sources = [path]
    base_name = child.data.pop(EXTENDS, None)
    extends_at = child.origins.pop((EXTENDS,), Origin(str(path), 1, 1))
    if base_name is None:
        return child
    if not isinstance(base_name, str) or not base_name:
        raise _located(extends_at, "extends must name one spec file, as a string", 'extends = "base.toml"')
    base_path = path.parent / base_name
    identity = base_path.resolve()
    if identity in chain or identity == path.resolve():
        cycle = " → ".join(str(p) for p in (*chain, path.resolve(), identity))
        raise _located(extends_at, f"extends makes a cycle: {cycle}", "a base spec must not extend its children")
    if not base_path.is_file():
        raise _located(
            extends_at, f"extends: {base_path} does not exist", "the path is relative to the file that extends it"
        )
    base = _compose(base_path, read, (*chain, path.resolve()))
    return Composed(
        data=merge(base.data, child.data),
        origins=_merge_origins(base.origins, child.data, child.origins),
        sources=base.sources + child.sources,
    )


def _located(origin: Origin, message: str, hint: str) -> SpecError:
    return SpecError([Diagnostic(origin.file, origin.line, origin.column, EXTENDS, message, hint, code=Code.EXTENDS)])


def merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_origins(
    base: dict[KeyPath, Origin], child_data: dict[str, Any], child: dict[KeyPath, Origin]
) -> dict[KeyPath, Origin]:
    replaced = list(_replaced_paths(child_data, ()))
    kept = {path: origin for path, origin in base.items() if not any(path[: len(r)] == r for r in replaced)}
    return {**kept, **child}


def _replaced_paths(data: dict[str, Any], prefix: KeyPath) -> Iterable[KeyPath]:
    """Paths whose whole value the child replaces: everything but the tables it merges into."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _replaced_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


# -- overrides ---------------------------------------------------------------------------------
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Override:
    text: str  # as given, for messages
    path: KeyPath
    raw: str  # the value as typed


def parse_override(text: str) -> Override:
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key:
        raise SpecError(
            [Diagnostic(OVERRIDE_SOURCE, 0, 0, "", f"{text!r} is not KEY=VALUE", _SET_EXAMPLE, code=Code.OVERRIDE)]
        )
    path: list[str | int] = []
    position = 0
    for match in _PART.finditer(key):
        if match.start() != position and key[position : match.start()] != ".":
            break
        path.append(match[1] if match[1] is not None else int(match[2]))
        position = match.end()
    if position != len(key) or not path or not isinstance(path[0], str):
        raise SpecError(
            [Diagnostic(OVERRIDE_SOURCE, 0, 0, "", f"{key!r} is not a key path", _SET_EXAMPLE, code=Code.OVERRIDE)]
        )
    return Override(text, tuple(path), raw.strip())


_SET_EXAMPLE = (
    "write --set section.key=value, e.g. --set train.learning_rate=2e-4 or --set data.datasets[0].path=x.json"
)


def apply_overrides(composed: Composed, overrides: Iterable[Override], wants_text: Callable[[KeyPath], bool]) -> None:
    """Set each override into the document, typed by the schema: `wants_text(path)` says a string is expected,
    so `--set model.revision=2024` stays the text "2024"; anything else is read as a TOML value."""
    for override in overrides:
        value = typed_value(override, wants_text)
        _assign(composed.data, override, value)
        composed.origins = {
            path: origin for path, origin in composed.origins.items() if path[: len(override.path)] != override.path
        }
        for depth in range(1, len(override.path) + 1):  # tables it made belong to the command line too
            composed.origins.setdefault(override.path[:depth], Origin(OVERRIDE_SOURCE, 0, 0))
        composed.origins[override.path] = Origin(OVERRIDE_SOURCE, 0, 0)


def typed_value(override: Override, wants_text: Callable[[KeyPath], bool]) -> Any:
    """The override's value as the spec will hold it: text where the schema wants text, else a TOML value."""
    return override.raw if wants_text(override.path) else _toml_value(override.raw)


def _toml_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word: the schema then says whether a string belongs here


def _assign(data: dict[str, Any], override: Override, value: Any) -> None:
    """Walk to the override's key, making tables on the way (an array item must already exist), and set it."""
    node: Any = data
    for depth, part in enumerate(override.path):
        last = depth == len(override.path) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                _bad_index(override, depth)
        elif not isinstance(node, dict):
            _not_a_table(override, depth)
        elif not last and part not in node:
            if isinstance(override.path[depth + 1], int):
                _bad_index(override, depth + 1)
            node[part] = {}
        if last:
            node[part] = value
        else:
            node = node[part]


def _bad_index(override: Override, depth: int) -> None:
    from ftc.spec.diagnostics import dotted

    where = dotted(override.path[: depth + 1])
    raise SpecError(
        [
            Diagnostic(
                OVERRIDE_SOURCE,
                0,
                0,
                dotted(override.path),
                f"{where} is not an existing array item",
                "an override can change an item the spec has, not add one",
                code=Code.OVERRIDE,
            )
        ]
    )


def _not_a_table(override: Override, depth: int) -> None:
    from ftc.spec.diagnostics import dotted

    where = dotted(override.path[:depth]) or "the document"
    raise SpecError(
        [
            Diagnostic(
                OVERRIDE_SOURCE,
                0,
                0,
                dotted(override.path),
                f"{where} is a value, not a table",
                "override the value itself, or a key of a table",
                code=Code.OVERRIDE,
            )
        ]
    )
