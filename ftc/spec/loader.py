"""Read a spec: TOML (+ the files it extends + --set overrides) → validated `Spec`, or a SpecError
holding every problem at once, each located where it was written."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ftc.spec.compose import Composed, apply_overrides, compose_file, document, parse_override
from ftc.spec.dataset_registry import RegistryEntryError, registry_dataset
from ftc.spec.diagnostics import Code, Diagnostic, SpecError, inner_model, validation_diagnostics
from ftc.spec.locate import KeyPath
from ftc.spec.models import Spec
from ftc.stages import STAGES


@dataclass(frozen=True)
class LoadedSpec:
    spec: Spec
    path: Path  # as given on the command line
    sources: tuple[Path, ...] = ()  # every spec file read, base first, the spec itself last
    overrides: tuple[str, ...] = ()  # --set arguments, as given
    document: dict[str, Any] = field(default_factory=dict)  # composed, before validation

    @property
    def base_dir(self) -> Path:
        """Relative paths in a spec are relative to the spec file, not to where ftc runs."""
        return self.path.resolve().parent


def parse_spec(text: str, file: str) -> Spec:
    """Pure: validate one TOML text (no extends). `file` only names the source in messages."""
    return validate_composed(document(text, file), file)


def validate_composed(composed: Composed, root_file: str) -> Spec:
    try:
        return Spec.model_validate(composed.data)
    except ValidationError as error:
        raise SpecError(validation_diagnostics(error.errors(), composed.origins, root_file, Spec)) from None


def load_spec(
    path: str | Path, overrides: typing.Sequence[str] = (), read: typing.Callable[[Path], str] | None = None
) -> LoadedSpec:
    """`read` gives a file's text (default: from disk); an editor passes its unsaved text for `path` this way."""
    path = Path(path)
    parsed = [parse_override(text) for text in overrides]  # a malformed --set fails before any file is read
    composed = compose_file(path, read or read_spec_text)
    apply_overrides(composed, parsed, expects_text)
    expand_named_datasets(composed, path.parent, str(path))
    spec = validate_composed(composed, str(path))
    return LoadedSpec(spec, path, tuple(composed.sources), tuple(overrides), composed.data)


def expand_named_datasets(composed: Composed, spec_dir: Path, root_file: str) -> None:
    """Fill each dataset entry that has a name and no path from data.registry (an LLaMA-Factory
    dataset_info.json): its path, format and column mapping; keys written in the entry win. An entry with
    a path is taken as written, so a run folder's resolved spec (every entry filled) reads no registry."""
    data = composed.data.get("data")
    if not isinstance(data, dict):
        return
    wanted = [
        (key, index, entry)
        for key in ("datasets", "eval_datasets")
        if isinstance(data.get(key), list)
        for index, entry in enumerate(data[key])
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and "path" not in entry
    ]
    registry = data.get("registry")
    train = composed.data.get("train")
    stage = train.get("stage", "sft") if isinstance(train, dict) else "sft"
    if not wanted or not isinstance(registry, str) or not registry or stage not in STAGES:
        return  # nothing to look up, or validation says what is wrong
    registry_at = composed.origins.get(("data", "registry"))
    info = _read_registry(Path(registry).expanduser(), spec_dir, registry_at, root_file)
    problems = []
    for key, index, entry in wanted:
        try:
            named = registry_dataset(info, entry["name"], STAGES[stage].data)
        except RegistryEntryError as error:
            where = composed.origins.get(("data", key, index, "name"), registry_at)
            blamed = f"{entry['name']}.{error.key}" if error.key else entry["name"]
            problems.append(
                Diagnostic(
                    where.file if where else root_file,
                    where.line if where else 0,
                    where.column if where else 0,
                    f"data.{key}[{index}].name",
                    f"{blamed} in {registry}: {error.message}",
                    error.hint or None,
                    code=Code.REGISTRY,
                )
            )
            continue
        table = dict(named.table)
        if named.local:  # a file beside the registry; the spec's paths are relative to the spec
            table["path"] = str(Path(registry).expanduser().parent / table["path"])
        data[key][index] = table | entry
    if problems:
        raise SpecError(problems)


def _read_registry(registry: Path, spec_dir: Path, at, root_file: str) -> dict[str, Any]:
    import json

    def fail(message: str, hint: str) -> SpecError:
        file, line, column = (at.file, at.line, at.column) if at else (root_file, 0, 0)
        return SpecError([Diagnostic(file, line, column, "data.registry", message, hint, code=Code.REGISTRY)])

    location = registry if registry.is_absolute() else spec_dir / registry
    try:
        info = json.loads(location.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"{location} does not exist", "the path is relative to the spec's folder") from None
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"{location} cannot be read: {error}", "name a readable dataset_info.json") from None
    except json.JSONDecodeError as error:
        raise fail(f"{location} is not JSON: {error.msg} at line {error.lineno}", "fix the file") from None
    if not isinstance(info, dict):
        raise fail(f"{location} holds no object of named datasets", 'write {"name": {"file_name": ...}}')
    return info


def read_spec_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError([Diagnostic(str(path), 0, 0, "", "no such file", "check the path", code=Code.FILE)]) from None
    except IsADirectoryError:
        raise SpecError(
            [Diagnostic(str(path), 0, 0, "", "is a folder, not a spec file", "name a .toml file", code=Code.FILE)]
        ) from None
    except OSError as error:
        raise SpecError(
            [Diagnostic(str(path), 0, 0, "", f"cannot read: {error.strerror}", None, code=Code.FILE)]
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError(
            [Diagnostic(str(path), line, 0, "", "not valid UTF-8", "save the file as UTF-8", code=Code.FILE)]
        ) from None


def expects_text(path: KeyPath) -> bool:
    """Whether the schema wants a string at `path` (and nothing else but None): an override's value
    is then kept as typed rather than read as a TOML value."""
    annotation = _annotation_at(Spec, path)
    if annotation is None:
        return False
    allowed = _leaf_types(annotation)
    return bool(allowed) and allowed <= {str, type(None)}


def _annotation_at(model: type[BaseModel], path: KeyPath) -> Any:
    annotation: Any = model
    for part in path:
        if isinstance(part, int):
            annotation = _item_type(annotation)
            continue
        inner = inner_model(annotation)
        if inner is None or part not in inner.model_fields:
            return None
        annotation = inner.model_fields[part].annotation
    return annotation


def _item_type(annotation: Any) -> Any:
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is list:
            return typing.get_args(candidate)[0]
    return None


def _leaf_types(annotation: Any) -> set[type]:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {type(value) for value in typing.get_args(annotation)}
    if origin is None:
        return {annotation} if isinstance(annotation, type) else set()
    if origin in (list, dict):
        return {origin}
    found: set[type] = set()
    for arg in typing.get_args(annotation):
        found |= _leaf_types(arg)
    return found
