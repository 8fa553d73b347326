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
        **strategy_files(job),
    }


def strategy_files(job: Job) -> dict[str, str]:
    """deepspeed.json for a ZeRO plan, fsdp.json for an FSDP plan, generated from the plan; nothing otherwise."""
    from ftc.compiler import deepspeed_config, fsdp_config
    from ftc.errors import FtcError
    from ftc.models.lookup import architecture_for

    try:
        arch = architecture_for(job.spec, job.spec_path.parent)  # the spec is resolved: its paths are absolute
    except FtcError:
        arch = None  # the configs then leave the model-sized settings to the libraries' defaults
    files = {
        deepspeed_config.FILE_NAME: deepspeed_config.deepspeed_config(
            job.plan, job.spec.train, arch.hidden_size if arch else None
        ),
        fsdp_config.FILE_NAME: fsdp_config.fsdp_config(job.plan, arch.model_type if arch else None),
    }
    return {name: json.dumps(config, indent=2) + "\n" for name, config in files.items() if config is not None}
