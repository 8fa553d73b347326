"""The spec language described from its own models: the JSON Schema for editors, `ftc explain KEY`,
and the commented starter spec of `ftc init`. Nothing here is written by hand twice: a field's
description, default and range come from the pydantic models, so they cannot drift from validation.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ftc.spec.diagnostics import dotted, inner_model, parse_dotted
from ftc.spec.models import Spec

SCHEMA_ID = "https://ftc.dev/schema/spec.json"
EXTENDS_DOC = "A spec file this one builds on, relative to this file; its tables merge key by key, arrays are replaced."


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["properties"] = {"extends": {"type": "string", "description": EXTENDS_DOC}, **schema["properties"]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# -- explain ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyDoc:
    path: str
    description: str
    type: str
    default: str  # as TOML would write it; "required" or "unset" where there is none
    range: str  # "" where the value is not bounded
    choices: tuple[str, ...]
    section: type[BaseModel] | None  # set when the key is a table


def sections() -> dict[str, type[BaseModel]]:
    return {name: inner_model(field.annotation) for name, field in Spec.model_fields.items()}  # type: ignore[misc]


def key_doc(path: str) -> KeyDoc:
    """The documentation of one key path, e.g. train.learning_rate or data.datasets.format."""
    parts = [part for part in parse_dotted(path) if not isinstance(part, int)]
    if not parts:
        raise KeyError(path)
    if parts == ["extends"]:
        return KeyDoc("extends", EXTENDS_DOC, "string", "unset", "", (), None)
    model: type[BaseModel] = Spec
    field: FieldInfo | None = None
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            raise KeyError(dotted(tuple(parts[: depth + 1])))
        field = model.model_fields[part]
        inner = inner_model(field.annotation)
        if depth < len(parts) - 1:
            if inner is None:
                raise KeyError(dotted(tuple(parts[: depth + 2])))
            model = inner
    assert field is not None
    inner = inner_model(field.annotation)
    return KeyDoc(
        path=".".join(parts),
        description=field.description or (inner.__doc__ or "").strip(),
        type=type_name(field.annotation),
        default=default_text(field),
        range=value_range(field),
        choices=_choices(field.annotation),
        section=inner,
    )


def known_keys() -> list[str]:
    keys = ["extends"]
    for name, model in sections().items():
        keys.append(name)
        keys += [f"{name}.{key}" for key in _keys_of(model)]
    return keys


def _keys_of(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        inner = inner_model(field.annotation)
        if inner is not None:
            keys += _keys_of(inner, f"{prefix}{name}.")
    return keys


def explain(path: str) -> str:
    doc = key_doc(path)
    lines = [doc.path, f"  {doc.description}"] if doc.description else [doc.path]
    if doc.section is not None:
        lines.append("  keys:")
        width = max(len(name) for name in doc.section.model_fields)
        for name, field in doc.section.model_fields.items():
            lines.append(f"    {name.ljust(width)}  {default_text(field):>12}  {field.description or ''}")
        return "\n".join(lines)
    lines.append(f"  type:    {doc.type}")
    lines.append(f"  default: {doc.default}")
    if doc.range:
        lines.append(f"  range:   {doc.range}")
    if doc.choices and not doc.type.startswith("one of"):
        lines.append(f"  choices: {', '.join(doc.choices)}")
    if doc.path == "train.optimizer":
        lines += _optimizer_lines()
    return "\n".join(lines)


def _optimizer_lines() -> list[str]:
    """Each optimizer as its record says: what it does, through which library, with what, and its memory."""
    from ftc.optimizers import ALL_METHODS, ALL_STRATEGIES, OPTIMIZERS

    lines = ["  values:"]
    for record in OPTIMIZERS.values():
        lines.append(f"    {record.name}: {record.summary}")
        facts = [f"library {record.library}" + (f" (ftc[{record.extra}])" if record.extra else "")]
        if record.section:
            facts.append(f"settings [{record.section}]")
        if record.methods != ALL_METHODS:
            facts.append(f"methods {', '.join(record.methods)}")
        if record.strategies != ALL_STRATEGIES:
            facts.append(f"strategies {', '.join(record.strategies)}")
        lines.append(f"      {'; '.join(facts)}")
        for said in (record.paper_saving, record.licence):
            if said:
                lines.append(f"      {said}")
    return lines


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(toml_value(value) for value in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(type_name(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is list:
        return f"array of {type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))


def value_range(field: FieldInfo) -> str:
    low = high = ""
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = f"{toml_value(rule.ge)} ≤ "
        elif isinstance(rule, annotated_types.Gt):
            low = f"{toml_value(rule.gt)} < "
        elif isinstance(rule, annotated_types.Le):
            high = f" ≤ {toml_value(rule.le)}"
        elif isinstance(rule, annotated_types.Lt):
            high = f" < {toml_value(rule.lt)}"
    return f"{low}value{high}" if low or high else ""


def _choices(annotation: Any) -> tuple[str, ...]:
    found: list[str] = []
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            found += [toml_value(value) for value in typing.get_args(candidate)]
    return tuple(found)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "table"
    return toml_value(value)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    if value is PydanticUndefined:
        return "required"
    return repr(value)
