"""`ftc init`: a starter spec for a stage and method, with every key of the language in it.

The keys a new user must choose are set; every other key is shown commented out at its default,
with its description, so the file documents itself and stays in step with the models it comes from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ftc.methods import METHODS
from ftc.spec.diagnostics import inner_model
from ftc.spec.schema import default_text, sections, toml_value
from ftc.stages import STAGES

# Sections written as live tables for every run; a method's and a stage's own sections (their records
# name them) are live for it, the others shown commented out.
ALWAYS = ("model", "data", "train", "output")


def starter_spec(stage: str, method: str, model: str, dataset: str | None = None) -> str:
    record = STAGES[stage]
    chosen: dict[str, dict[str, Any]] = {
        "model": {"name_or_path": model},
        # the first format the stage reads: a dataset of that shape
        "data.datasets": {"path": dataset or f"data/{stage}.jsonl", "format": record.formats[0]},
        "train": {"stage": stage, "method": method, "max_steps": 1000},
        "quantization": {"bits": 4},
        "output": {"dir": f"runs/{stage}-{method}"},
    }
    if record.samples:
        # a rollout stage needs rewards: a reward model trained by an rm run, or built-in reward functions
        needed = record.reward_model == "needed"
        chosen["ppo"] = {"reward_model": "./runs/rm-lora/adapter"} if needed else {"reward_functions": ["length"]}
    live = {*ALWAYS, *METHODS[method].sections, *record.sections}
    lines = [
        f"# A {stage} run with {method}, written by `ftc init`. Every key of the spec language is here:",
        "# the ones set are the choices to make; commented ones show their default.",
        "# `ftc explain KEY` documents a key, `ftc validate` checks this file, `ftc plan` shows what it needs.",
        "",
    ]
    for name, model_cls in sections().items():
        if model_cls is None:
            continue
        lines += _section(name, model_cls, chosen, commented=name not in live)
    return "\n".join(lines).rstrip() + "\n"


def _section(name: str, model: type[BaseModel], chosen: dict[str, dict[str, Any]], commented: bool) -> list[str]:
    hide = "# " if commented else ""
    lines = [f"{hide}[{name}]"]
    tables: list[tuple[str, type[BaseModel]]] = []
    for key, field in model.model_fields.items():
        inner = inner_model(field.annotation)
        if inner is not None and field.is_required():
            tables.append((f"{name}.{key}", inner))  # an array of tables, written after this table's keys
            continue
        lines.append(_key_line(key, field, chosen.get(name, {}), hide))
    lines.append("")
    for table_name, table in tables:
        lines.append(f"{hide}[[{table_name}]]")
        lines += [_key_line(key, field, chosen.get(table_name, {}), hide) for key, field in table.model_fields.items()]
        lines.append("")
    return lines


def _key_line(key: str, field, chosen: dict[str, Any], hide: str) -> str:
    about = f"  # {field.description}" if field.description else ""
    if key in chosen:
        return f"{hide}{key} = {toml_value(chosen[key])}{about}"
    default = default_text(field)
    value = "..." if default in ("unset", "required", "table") else default
    return f"# {key} = {value}{about}"
