"""The target registry: each target turns a job into files + a command, then runs it.

Records name their module so that `ftc validate` and `ftc plan` never import a target they do not use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ftc.errors import FtcError
from ftc.targets.base import Job, Rendered, Target


@dataclass(frozen=True)
class TargetRecord:
    name: str
    module: str
    cls: str
    summary: str


TARGETS: dict[str, TargetRecord] = {
    record.name: record
    for record in (
        TargetRecord("local", "ftc.targets.local", "LocalTarget", "this machine, as a child process"),
        TargetRecord("slurm", "ftc.targets.slurm", "SlurmTarget", "a Slurm cluster, submitted with sbatch"),
        TargetRecord("docker", "ftc.targets.docker", "DockerTarget", "a container built from a rendered Dockerfile"),
    )
}


def get_target(name: str, smoke_steps: int = 0) -> Target:
    if name not in TARGETS:
        raise FtcError(f"unknown target '{name}'", f"known targets: {', '.join(TARGETS)}")
    record = TARGETS[name]
    cls = getattr(importlib.import_module(record.module), record.cls)
    if smoke_steps:
        if name != "slurm":
            raise FtcError(f"--smoke-steps is for the slurm target, not '{name}'", "drop it, or use --target slurm")
        return cls(smoke_steps=smoke_steps)
    return cls()


__all__ = ["TARGETS", "Job", "Rendered", "Target", "get_target"]
