"""[model]: the base model, its revision, template and attention, RoPE scaling, and an adapter to start from."""

from __future__ import annotations

from pydantic import Field, field_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import Attention, RopeType, Section, rule_error


class RopeScaling(Section):
    type: RopeType = Field(
        description="linear: positions divided by factor; dynamic: NTK scaling that grows past the model's length; "
        "yarn and llama3: frequency bands scaled apart (the long-context recipes of YaRN and Llama 3.1)."
    )
    factor: float = Field(gt=1, le=128, description="How many times the model's own positions the rows may reach.")


class ModelSection(Section):
    name_or_path: str = Field(min_length=1, description="Hub id or local folder of the base model.")
    template: str = Field(
        default="auto",
        min_length=1,
        description="Chat template name from ftc's registry, or 'auto' for the tokenizer's own.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    adapter: str | None = Field(
        default=None,
        min_length=1,
        description="A LoRA adapter to start from (an earlier run's adapter/ folder, relative to the spec, or a hub "
        "id): trained further by lora/qlora, merged into the base by full/freeze. New data, schedule and optimizer; "
        "to continue an interrupted run, use ftc launch --resume instead.",
    )
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own Python code; off unless you trust it."
    )
    architecture: dict[str, int | float | bool | str] | None = Field(
        default=None,
        description="Shape keys as in a config.json (model_type, hidden_size, ...), for a model ftc cannot look up.",
    )
    attention: Attention = Field(
        default="auto", description="Attention kernel: eager keeps seq × seq scores; sdpa and flash do not."
    )
    rope_scaling: RopeScaling | None = Field(
        default=None,
        description="Stretch the model's rotary positions to rows longer than it was trained on: "
        "{ type = 'linear' | 'dynamic' | 'yarn' | 'llama3', factor = 4.0 }.",
    )

    @field_validator("template")
    @classmethod
    def _known_template(cls, name: str) -> str:
        from ftc.spec.chat_templates import TEMPLATES  # pure registry, no heavy imports

        if name != "auto" and name not in TEMPLATES:
            import difflib

            close = difflib.get_close_matches(name, list(TEMPLATES), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known: auto, " + ", ".join(sorted(TEMPLATES))
            raise rule_error(f"unknown chat template '{name}'", hint, code=Code.ENUM)
        return name
