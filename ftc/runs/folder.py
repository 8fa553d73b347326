"""The run folder a target wrote: its resolved spec, its plan, and where the runtime writes results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.methods import METHODS
from ftc.spec import Spec, SpecError, parse_spec


@dataclass(frozen=True)
class RunFolder:
    path: Path
    spec: Spec
    plan: Plan

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def trained(self) -> Path:
        """Where the result goes: the adapter for LoRA and QLoRA, the whole model otherwise."""
        return self.path / ("adapter" if METHODS[self.spec.train.method].has_adapter else "model")

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def loss_plot(self) -> Path:
        return self.path / "loss.png"


def load_run_folder(path: str | Path) -> RunFolder:
    path = Path(path).resolve()
    spec_file, plan_file = path / "spec.toml", path / "plan.json"
    for needed in (spec_file, plan_file):
        if not needed.is_file():
            raise RuntimeUserError(
                f"{needed} not found",
                "RUN_DIR must be a run folder written by a target (spec.toml + plan.json); try `ftc launch`",
            )
    try:
        spec = parse_spec(spec_file.read_text(encoding="utf-8"), str(spec_file))
    except SpecError as error:
        raise RuntimeUserError(
            f"{spec_file} is not a valid spec:\n{error}",
            "regenerate the run folder from a spec that passes `ftc validate`",
        ) from None
    try:
        plan = Plan.from_dict(json.loads(plan_file.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise RuntimeUserError(f"{plan_file} is not a valid plan: {error}", "regenerate the run folder") from None
    return RunFolder(path=path, spec=spec, plan=plan)
