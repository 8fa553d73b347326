"""Turn TOML and pydantic errors into located, human messages: FILE:LINE: key.path: [CODE] what (hint: how)."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import asdict, dataclass, field
from enum import StrEnum, unique
from typing import Any

from pydantic import BaseModel

from ftc.errors import FtcError
from ftc.spec.locate import KeyPath, Origin, nearest_position


@unique
class Code(StrEnum):
    """The kind of a spec problem. The code is a contract (CI filters and tests match on it; the wording
    may change), so a code is never renamed or reused for another kind."""

    meaning: str

    def __new__(cls, code: str, meaning: str) -> Code:
        member = str.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    FILE = "E-FILE", "the spec file cannot be read: missing, a folder, unreadable, or not UTF-8"
    TOML_SYNTAX = "E-TOML-SYNTAX", "the file is not valid TOML"
    EXTENDS = "E-EXTENDS", "extends names no usable base: not a string, a missing file, or a cycle"
    OVERRIDE = "E-OVERRIDE", "a --set argument that is not KEY=VALUE, or names no place in the spec"
    UNKNOWN_KEY = "E-UNKNOWN-KEY", "a key that has no meaning at that place, often a misspelling"
    MISSING = "E-MISSING", "a key or table is required, by the schema or by another key's value"
    TYPE = "E-TYPE", "a value of the wrong type: text for a number, a number for a table"
    ENUM = "E-ENUM", "a value that is not one of the names the key accepts"
    RANGE = "E-RANGE", "a number outside the key's range"
    LENGTH = "E-LENGTH", "a text or array too short or too long: an empty name, no datasets"
    FORMAT = "E-FORMAT", "a text not in the form the key needs: a pattern, a regular expression, an #SBATCH option"
    SECRET = "E-SECRET", "a credential, or a name that holds one, where values are written down"
    RESERVED = "E-RESERVED", "a setting ftc's launcher makes itself"
    CONFLICT = "E-CONFLICT", "keys that cannot go together; the message names the other side"
    INVALID = "E-INVALID", "a value refused for a reason no other code names; the message says which"
    REGISTRY = "E-REGISTRY", "data.registry cannot be read, lacks a named dataset, or describes it as ftc cannot read"


# pydantic's error types, by the code they report as; a type not here is E-TYPE when pydantic names
# it a type error (…_type, …_parsing), else E-INVALID.
_CODES = {
    "extra_forbidden": Code.UNKNOWN_KEY,
    "missing": Code.MISSING,
    "literal_error": Code.ENUM,
    "enum": Code.ENUM,
    "greater_than": Code.RANGE,
    "greater_than_equal": Code.RANGE,
    "less_than": Code.RANGE,
    "less_than_equal": Code.RANGE,
    "finite_number": Code.RANGE,
    "multiple_of": Code.RANGE,
    "too_short": Code.LENGTH,
    "too_long": Code.LENGTH,
    "string_too_short": Code.LENGTH,
    "string_too_long": Code.LENGTH,
    "string_pattern_mismatch": Code.FORMAT,
}

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}

_RANGE_WORDS = {
    "greater_than": ">",
    "greater_than_equal": "≥",
    "less_than": "<",
    "less_than_equal": "≤",
}


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    column: int
    path: str  # dotted key path, e.g. data.datasets[0].format; empty for file-level errors
    code: Code = field(kw_only=True)  # required wherever a diagnostic is made; kept beside the path in JSON
    message: str
    hint: str | None = None

    def format(self) -> str:
        where = f"{self.file}:"
        if self.line:
            # The column matters for syntax errors; for a key, its path says more.
            where += f"{self.line}:{self.column}:" if not self.path and self.column else f"{self.line}:"
        path = f" {self.path}:" if self.path else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{path} [{self.code}] {self.message}{hint}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpecError(FtcError):
    """A spec that failed to parse or validate; holds every problem found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        count = len(diagnostics)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the spec")

    def __str__(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def toml_syntax_diagnostic(file: str, error: Exception, source: str = "") -> Diagnostic:
    text = str(error)
    match = re.search(r"\(at line (\d+), column (\d+)\)", text)
    # tomllib says "at end of document" for an unclosed construct: that is the last line.
    last_line = source.rsplit("\n", 1)[-1]
    end = (source.count("\n") + 1, len(last_line) + 1)
    line, column = (int(match[1]), int(match[2])) if match else end
    message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", text)
    return Diagnostic(
        file,
        line,
        column,
        "",
        f"TOML syntax error: {message}",
        "check quoting, brackets and `key = value` form here",
        code=Code.TOML_SYNTAX,
    )


def validation_diagnostics(
    errors: list[dict[str, Any]], origins: dict[KeyPath, Origin], root_file: str, root: type[BaseModel]
) -> list[Diagnostic]:
    """One located diagnostic per pydantic error. A key nobody wrote (a missing one) is placed at its
    nearest written table, else at the top of the root file."""
    diagnostics = []
    for error in errors:
        loc: KeyPath = tuple(part for part in error["loc"] if not _is_union_tag(part))
        at = (error.get("ctx") or {}).get("at")
        if error["type"] == "spec_rule" and at:
            loc = parse_dotted(at)  # a rule between two keys names the one to change
        message, hint = _explain(error, loc, root)
        where = nearest_position(origins, loc) or Origin(root_file, 1, 1)
        diagnostics.append(
            Diagnostic(where.file, where.line, where.column, dotted(loc), message, hint, code=_code(error))
        )
    return sorted(diagnostics, key=lambda d: (d.file != root_file, d.file, d.line, d.column))


def parse_dotted(text: str) -> KeyPath:
    return tuple(int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", text))


def _code(error: dict[str, Any]) -> Code:
    kind = error["type"]
    if kind == "spec_rule":
        return Code(error["ctx"]["code"])
    if kind in _TYPE_NAMES or kind.endswith(("_type", "_parsing")):
        return Code.TYPE
    return _CODES.get(kind, Code.INVALID)


def _is_union_tag(part: Any) -> bool:
    # pydantic names the union member it tried ("str", "list[str]") inside the location.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _explain(error: dict[str, Any], loc: KeyPath, root: type[BaseModel]) -> tuple[str, str | None]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    key = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        known = _fields_at(root, loc[:-1])
        return f"unknown key '{key}'", _did_you_mean(str(key), known, "valid keys here")
    if kind == "missing":
        return _missing(root, loc)
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        choices = re.findall(r"'([^']*)'", expected) or re.findall(r"[\w.+-]+", expected.replace(" or ", ", "))
        return f"{_show(value)} is not one of: {', '.join(choices)}", _did_you_mean(str(value), choices, "choose")
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}, got {_describe(value)}", _type_hint(kind, key, value)
    if kind in _RANGE_WORDS:
        bound = next(iter(ctx.values()))
        return f"must be {_RANGE_WORDS[kind]} {bound}, got {_show(value)}", _range_hint(root, loc)
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s), got {_describe(value)}", _too_short_hint(loc)
    if kind == "string_too_short":
        return "must not be empty", None
    if kind == "spec_rule":
        return str(error["msg"]), ctx.get("hint")
    return str(error["msg"]), None


def _missing(root: type[BaseModel], loc: KeyPath) -> tuple[str, str]:
    field = _field_at(root, loc)
    about = f" — {field.description}" if field is not None and field.description else ""
    if field is not None and inner_model(field.annotation) is not None:
        brackets = "[[{}]]" if typing.get_origin(field.annotation) is list else "[{}]"
        return f"required table {brackets.format(dotted(loc))} is missing{about}", "add it with its keys"
    parent = f"under [{dotted(loc[:-1])}]" if loc[:-1] else "at the top of the file"
    return f"required key '{loc[-1]}' is missing{about}", f"add `{loc[-1]} = …` {parent}"


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _describe(value: Any) -> str:
    kinds = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }
    name = kinds.get(type(value), type(value).__name__)
    return name if isinstance(value, (list, dict)) else f"{name} ({_show(value)})"


def _type_hint(kind: str, key: Any, value: Any) -> str | None:
    if isinstance(value, str):
        for parse, wanted in ((int, "int"), (float, "float")):
            try:
                parse(value)
            except ValueError:
                continue
            if wanted in kind or kind.startswith("float"):
                return f"write the number without quotes: {key} = {value}"
        if value.lower() in ("true", "false") and kind.startswith("bool"):
            return f"write {key} = {value.lower()} without quotes"
    if kind.startswith("string") and not isinstance(value, (list, dict)):
        return f'put the value in quotes: {key} = "{_show(value)}"'
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"write it as a table: [{key}] on its own line, then its keys"
    return None


def _range_hint(root: type[BaseModel], loc: KeyPath) -> str | None:
    field = _field_at(root, loc)
    if field is None:
        return None
    low = high = None
    for rule in field.metadata:
        for attr, symbol in (("ge", "≤"), ("gt", "<")):
            if getattr(rule, attr, None) is not None:
                low = f"{getattr(rule, attr)} {symbol} "
        for attr, symbol in (("le", "≤"), ("lt", "<")):
            if getattr(rule, attr, None) is not None:
                high = f" {symbol} {getattr(rule, attr)}"
    return f"valid range: {low or ''}{loc[-1]}{high or ''}"


def _too_short_hint(loc: KeyPath) -> str:
    if loc[-1] == "datasets":
        return "add a [[data.datasets]] table with at least a path"
    return "add at least one item"


def _did_you_mean(word: str, choices: list[str], fallback: str) -> str | None:
    if not choices:
        return None
    import difflib  # only on the error path: validating a good spec should not pay for it

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"{fallback}: {', '.join(choices)}"


# -- walking the models to learn what a location may hold ----------------------------------
def _model_at(root: type[BaseModel], loc: KeyPath) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = inner_model(model.model_fields[part].annotation)
    return model


def _fields_at(root: type[BaseModel], loc: KeyPath) -> list[str]:
    model = _model_at(root, loc)
    return list(model.model_fields) if model else []


def _field_at(root: type[BaseModel], loc: KeyPath):
    model = _model_at(root, tuple(p for p in loc[:-1]))
    if model is None or not loc or loc[-1] not in model.model_fields:
        return None
    return model.model_fields[loc[-1]]


def inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, list):
        for arg in typing.get_args(annotation):
            found = inner_model(arg)
            if found:
                return found
    return None
