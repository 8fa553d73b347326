"""What every importer shares: the located YAML, the mapping records, the report of keys left out, the TOML.

A source tool's module is a table of `Rule` records, one per key of its config: the ftc key it becomes and
how its value converts, or why it has none. Keys that decide together (a stage and its loss, batch sizes
and the world size) have a rule whose `apply` sees the whole config through `Import`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ftc.errors import FtcError


class UnmappableValue(ValueError):
    """A converter's refusal: what is wrong with the value, and how to write one ftc can map."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Source:
    """The config as read: each top-level key's value and the line it was written on."""

    file: Path
    text: str
    values: dict[str, Any]
    lines: dict[str, int]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def read_yaml(file: Path) -> Source:
    """A YAML mapping with the line of each top-level key (PyYAML's compose nodes carry their marks)."""
    try:
        import yaml
    except ImportError:
        raise FtcError("reading YAML configs needs PyYAML", "pip install 'ftc[import]'") from None
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FtcError(f"{file} does not exist", "check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FtcError(f"{file} cannot be read: {error}", "name a readable UTF-8 YAML file") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(error, "problem", None) or str(error)
        raise FtcError(f"{where}: not valid YAML: {problem}", "fix the syntax") from None
    if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
        raise FtcError(f"{file}: expected a mapping of keys to values at the top", "write `key: value` lines")
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    values = {str(key): value for key, value in document.items()}
    return Source(file, text, values, lines)


@dataclass(frozen=True)
class Rule:
    """One source key: the ftc key it becomes (`to`, value through `convert`), or a whole-config `apply`, or
    `why` it has no equivalent. `consumed`: read by another key's rule, so it is neither mapped nor reported."""

    key: str
    to: str | None = None
    convert: Callable[[Any], Any] | None = None
    apply: Callable[[Import, Any], None] | None = None
    why: str | None = None
    consumed: bool = False


@dataclass
class Import:
    """One import in progress: the spec document being built, the notes for its header, the keys left out."""

    source: Source
    document: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unmapped: list[tuple[str, Any, str]] = field(default_factory=list)  # key, value, why
    options: dict[str, Any] = field(default_factory=dict)  # the command line's: world size, dataset info, output

    def get(self, key: str, default: Any = None) -> Any:
        return self.source.values.get(key, default)

    def has(self, key: str) -> bool:
        return self.source.values.get(key) is not None

    def set(self, dotted: str, value: Any) -> None:
        table = self.document
        *parents, leaf = dotted.split(".")
        for part in parents:
            table = table.setdefault(part, {})
        table[leaf] = value

    def lookup(self, dotted: str, default: Any = None) -> Any:
        table: Any = self.document
        for part in dotted.split("."):
            if not isinstance(table, dict) or part not in table:
                return default
            table = table[part]
        return table

    def leave_out(self, key: str, why: str) -> None:
        self.unmapped.append((key, self.get(key), why))

    def fail(self, key: str, message: str, hint: str) -> FtcError:
        line = self.source.lines.get(key)
        where = f"{self.source.file}:{line}" if line else str(self.source.file)
        return FtcError(f"{where}: {key}: {message}", hint)


def run_rules(job: Import, rules: Iterable[Rule], unknown_why: str) -> None:
    """Every key of the source through its rule, in the order the rules list them; keys no rule names are
    reported with `unknown_why`. A None value (`key:` left empty) means the tool's default: left out quietly."""
    table = {rule.key: rule for rule in rules}
    for rule in table.values():
        if not job.has(rule.key) or rule.consumed:
            continue
        value = job.get(rule.key)
        try:
            if rule.apply is not None:
                rule.apply(job, value)
            elif rule.to is not None:
                job.set(rule.to, rule.convert(value) if rule.convert else value)
            else:
                job.leave_out(rule.key, rule.why or "no equivalent in ftc")
        except UnmappableValue as error:
            raise job.fail(rule.key, error.message, error.hint) from None
    for key in job.source.values:
        if key not in table and job.get(key) is not None:
            job.leave_out(key, unknown_why)


# --- converters: each takes the YAML value and returns ftc's, or raises UnmappableValue ------------------


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise UnmappableValue(f"expected true or false, found {value!r}", "write true or false")


def number(value: Any) -> float:
    # YAML 1.1 reads 1e-4 (no dot) as text, which the tools' own parsers take as a number.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise UnmappableValue(f"expected a number, found {value!r}", "write a number such as 2.0e-4") from None


def whole(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise UnmappableValue(f"expected a whole number, found {value!r}", "write a whole number")


def text(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise UnmappableValue(f"expected text, found {value!r}", "write a name or a path")


def names(value: Any) -> list[str]:
    """A comma-separated list (LF's style) or a YAML list, as a list of names."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return list(value)
    raise UnmappableValue(f"expected names, found {value!r}", "write them comma-separated or as a list")


def targets(value: Any) -> str | list[str]:
    """Target modules: 'all' (every linear layer) or their names."""
    listed = names(value)
    return "all" if listed == ["all"] else listed


def one_of(table: dict[Any, Any], what: str) -> Callable[[Any], Any]:
    """A value from a fixed set, mapped to ftc's name; one outside the set cannot be mapped."""

    def convert(value: Any) -> Any:
        key = value.strip().lower() if isinstance(value, str) else value
        if key not in table or table[key] is None:
            known = ", ".join(str(name) for name, ours in table.items() if ours is not None)
            raise UnmappableValue(f"{what} {value!r} has no equivalent in ftc", f"use one of: {known}")
        return table[key]

    return convert


# --- the written spec ------------------------------------------------------------------------------


_SECTION_ORDER = ("model", "data", "train")  # as ftc init writes them; the others follow in the order set


def render(job: Import, tool: str) -> str:
    """The spec text: a header naming the source and its hash, the notes, the spec, then the keys left out."""
    header = [
        f"# Imported from {tool}: {job.source.file.name}",
        f"# source sha256: {job.source.sha256}",
        "# Check it with: ftc validate, ftc plan --hardware ...",
    ]
    header += [f"# note: {note}" for note in job.notes]
    ordered = {name: job.document[name] for name in _SECTION_ORDER if name in job.document}
    body = tomli_w.dumps(ordered | job.document)
    footer = []
    if job.unmapped:
        footer = ["", f"# Keys of {job.source.file.name} with no equivalent in ftc, left out:"]
        for key, value, why in job.unmapped:
            footer.append(f"# {key}: {_short(value)}  -- {why}")
    return "\n".join(header) + "\n\n" + body + "\n".join(footer) + ("\n" if footer else "")


def _short(value: Any) -> str:
    shown = repr(value) if not isinstance(value, str) else value
    shown = " ".join(shown.split())
    return shown if len(shown) <= 60 else shown[:57] + "..."
