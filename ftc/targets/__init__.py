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
    module: str  # imported only when the target is used
    cls: str
    summary: str
    smoke_steps: bool = False  # takes --smoke-steps: a short job submitted first, the real one after it
    doctor_rows: tuple[str, ...] = ()  # what `ftc doctor --target NAME` must find on this machine (its rows)
    # The run starts on the launching machine with its paths: `ftc launch` prepares the data into the cache in
    # the same pass as its data check, and the runtime memory-maps it. Elsewhere (a login node, a container
    # with its own paths) the launch only checks, and the run's first rank prepares.
    prepares_data: bool = False


TARGETS: dict[str, TargetRecord] = {
    record.name: record
    for record in (
        TargetRecord(
            "local", "ftc.targets.local", "LocalTarget", "this machine, as a child process", prepares_data=True
        ),
        TargetRecord(
            "slurm",
            "ftc.targets.slurm",
            "SlurmTarget",
            "a Slurm cluster, submitted with sbatch",
            smoke_steps=True,
            doctor_rows=("slurm client",),
        ),
        TargetRecord(
            "docker",
            "ftc.targets.docker",
            "DockerTarget",
            "a container built from a rendered Dockerfile",
            doctor_rows=("docker client", "docker daemon"),
        ),
    )
}


def target_record(name: str) -> TargetRecord:
    if name not in TARGETS:
        raise FtcError(f"unknown target '{name}'", f"known targets: {', '.join(TARGETS)}")
    return TARGETS[name]


def get_target(name: str, smoke_steps: int = 0) -> Target:
    record = target_record(name)
    cls = getattr(importlib.import_module(record.module), record.cls)
    if smoke_steps:
        if not record.smoke_steps:
            takers = ", ".join(other.name for other in TARGETS.values() if other.smoke_steps)
            raise FtcError(
                f"--smoke-steps is for the {takers} target, not '{name}'", f"drop it, or use --target {takers}"
            )
        return cls(smoke_steps=smoke_steps)
    return cls()


__all__ = ["TARGETS", "Job", "Rendered", "Target", "TargetRecord", "get_target", "target_record"]
