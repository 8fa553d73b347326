"""Read a spec: TOML (+ the files it extends + --set overrides) → validated `Spec`, or a SpecError
holding every problem at once, each located where it was written."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ftc.spec.compose import Composed, apply_overrides, compose_file, document, parse_override
from ftc.spec.diagnostics import Code, Diagnostic, SpecError, inner_model, validation_diagnostics
from ftc.spec.locate import KeyPath
from ftc.spec.models import Spec


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


def load_spec(path: str | Path, overrides: typing.Sequence[str] = ()) -> LoadedSpec:
    path = Path(path)
    parsed = [parse_override(text) for text in overrides]  # a malformed --set fails before any file is read
    composed = compose_file(path, read_spec_text)
    apply_overrides(composed, parsed, expects_text)
    spec = validate_composed(composed, str(path))
    return LoadedSpec(spec, path, tuple(composed.sources), tuple(overrides), composed.data)


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
