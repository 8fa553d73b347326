"""What every target shares: the job it is given, what it renders, and the files every run folder holds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import tomli_w

from ftc import __version__
from ftc.compiler.plan import Plan
from ftc.spec.models import Spec


@dataclass(frozen=True)
class Job:
    spec_path: Path  # the spec as the user named it, for headers and messages
    spec: Spec  # resolved: local paths absolute, output.dir == run_dir
    plan: Plan
    run_dir: Path
    python: str  # the interpreter that starts the runtime


@dataclass(frozen=True)
class Rendered:
    files: dict[str, str]  # path inside the run folder → content
    command: list[str]  # what starts the job
    executable: frozenset[str] = field(default_factory=frozenset)


class Target(Protocol):
    name: str

    def render(self, job: Job) -> Rendered:
        """Pure: the files and the command that run `job` on this target."""

    def start(self, job: Job, rendered: Rendered) -> int:
        """Run the rendered command; returns its exit status."""


def run_folder_files(job: Job) -> dict[str, str]:
    """The resolved spec and the plan: what the runtime reads, whichever target starts it."""
    header = (
        f"# Resolved by ftc {__version__} from {' '.join(str(job.spec_path).split())}.\n"
        "# The runtime reads this file; edit the original spec and launch again instead.\n\n"
    )
    return {
        "spec.toml": header + tomli_w.dumps(job.spec.model_dump(mode="json", exclude_none=True)),
        "plan.json": json.dumps({"ftc_version": __version__, **job.plan.to_dict()}, indent=2, ensure_ascii=False)
        + "\n",
    }
