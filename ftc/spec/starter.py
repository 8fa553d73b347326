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


# `ftc init` without --model
TEXT_MODEL = "meta-llama/Llama-3.1-8B"
# `ftc init --vision` without --model: the smallest published image+text model the registry knows.
VISION_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
# Up to 1280 image tokens an image (28 × 28 px each after Qwen's merge); a fixed-resolution tower ignores it.
VISION_MAX_PIXELS = 28 * 28 * 1280


def starter_spec(
    stage: str, method: str, model: str, dataset: str | None = None, vision_template: str | None = None
) -> str:
    """`vision_template`: an image+text model's starter, with that chat template (its records carry images)."""
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
    about = ""
    if vision_template is not None:
        chosen["model"]["template"] = vision_template
        chosen["data.datasets"]["path"] = dataset or f"data/{stage}_images.jsonl"
        chosen["data"] = {"image_max_pixels": VISION_MAX_PIXELS}
        chosen["vision"] = {"freeze_tower": True, "freeze_projector": False}
        live.add("vision")
        about = (
            "\n# Its records name images (an `images` list, each placed at an <image> in the text); the vision"
            "\n# tower stays frozen, the projector and the method's weights train."
        )
    lines = [
        f"# A {stage} run with {method}, written by `ftc init`. Every key of the spec language is here:",
        f"# the ones set are the choices to make; commented ones show their default.{about}",
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
