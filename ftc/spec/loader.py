"""Read a spec: TOML text → validated `Spec`, or a SpecError holding every problem at once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ftc.spec.diagnostics import Diagnostic, SpecError, toml_syntax_diagnostic, validation_diagnostics
from ftc.spec.locate import locate_keys
from ftc.spec.models import Spec


@dataclass(frozen=True)
class LoadedSpec:
    spec: Spec
    path: Path  # as given on the command line
    text: str

    @property
    def base_dir(self) -> Path:
        """Relative paths in a spec are relative to the spec file, not to where ftc runs."""
        return self.path.resolve().parent


def parse_spec(text: str, file: str) -> Spec:
    """Pure: validate TOML text. `file` only names the source in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError([toml_syntax_diagnostic(file, error)]) from None
    try:
        return Spec.model_validate(data)
    except ValidationError as error:
        diagnostics = validation_diagnostics(file, error.errors(), locate_keys(text), Spec)
        raise SpecError(diagnostics) from None


def load_spec(path: str | Path) -> LoadedSpec:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError([Diagnostic(str(path), 0, 0, "", "no such file", "check the path")]) from None
    except IsADirectoryError:
        raise SpecError(
            [Diagnostic(str(path), 0, 0, "", "is a folder, not a spec file", "name a .toml file")]
        ) from None
    except OSError as error:
        raise SpecError([Diagnostic(str(path), 0, 0, "", f"cannot read: {error.strerror}", None)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError([Diagnostic(str(path), line, 0, "", "not valid UTF-8", "save the file as UTF-8")]) from None
    return LoadedSpec(parse_spec(text, str(path)), path, text)
