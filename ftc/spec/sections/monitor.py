"""[monitor]: where the run reports its metrics; credentials come from the environment only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import Section, rule_error

Monitor = Literal["tensorboard", "wandb", "mlflow"]


class MonitorSection(Section):
    report_to: list[Monitor] = Field(
        default=["tensorboard"],
        description="Where the trainer logs live: tensorboard (in the run folder), wandb, mlflow; [] for none. "
        "Keys come from the environment only (WANDB_API_KEY, MLFLOW_TRACKING_URI, ...), never the spec.",
    )
    project: str | None = Field(
        default=None, min_length=1, description="wandb project / mlflow experiment name; unset: the tools' defaults."
    )
    run_name: str | None = Field(
        default=None, min_length=1, description="Run name shown in the monitors; unset: the run folder's name."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, values: object) -> object:
        # A key in the spec would end up in the run folder, in version control and in shared logs.
        for name in values if isinstance(values, dict) else ():
            if any(word in str(name).lower() for word in ("key", "token", "password", "secret")):
                raise rule_error(
                    "credentials never go in the spec",
                    "export them (e.g. WANDB_API_KEY) in the environment and name them in launch.secrets",
                    at=f"monitor.{name}",
                    code=Code.SECRET,
                )
        return values


# Built-in reward functions grpo can score replies with (the runtime's registry is ftc.runtime.model.rewards).
