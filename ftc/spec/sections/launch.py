"""[launch], [slurm] and [docker]: how the run is started; every value that reaches a script is checked here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import Section, rule_error

# Values Slurm reads from `#SBATCH` lines, before any shell runs: plain words only, no quoting to rely on.
SLURM_WORD = r"^[A-Za-z0-9_.:+,@=/-]+$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# launch.env values are written into scripts, so names that usually hold a secret are refused there.
SECRET_LIKE = r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL"
# Set per node and per process by the launcher; a fixed value in launch.env would break the rendezvous.
LAUNCHER_OWNED_ENV = frozenset(
    {"MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "NNODES", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"}
)


class LaunchSection(Section):
    secrets: list[str] = Field(
        default=[],
        description="Environment variable names (e.g. HF_TOKEN) passed to the job by name; values are never written.",
    )

    @field_validator("secrets")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        import re

        for name in names:
            if not re.match(ENV_NAME, name):
                raise rule_error(
                    f"{name!r} is not an environment variable name", "use letters, digits and _", code=Code.FORMAT
                )
        return names

    env: dict[str, str] = Field(
        default={},
        description="Environment variables set for every training process (NCCL_*/HCCL_* tuning); values are written.",
    )
    rendezvous_timeout_s: int = Field(
        default=900, ge=10, le=86_400, description="Seconds the launcher waits for every node to join the rendezvous."
    )
    collective_timeout_s: int = Field(
        default=1800, ge=10, le=86_400, description="Seconds one collective (all-reduce, ...) may wait before failing."
    )

    @field_validator("env")
    @classmethod
    def _plain_settings(cls, env: dict[str, str]) -> dict[str, str]:
        import re

        for name in env:
            at = f"launch.env.{name}"
            if not re.match(ENV_NAME, name):
                raise rule_error(
                    f"{name!r} is not an environment variable name", "use letters, digits and _", at, code=Code.FORMAT
                )
            if re.search(SECRET_LIKE, name, re.IGNORECASE):
                raise rule_error(
                    f"{name} looks like a secret, and env values are written into the run folder",
                    f"list {name} in launch.secrets instead: it is passed by name from your environment",
                    at,
                    code=Code.SECRET,
                )
            if name in LAUNCHER_OWNED_ENV:
                raise rule_error(
                    f"{name} is set by ftc's launcher for each node and process",
                    "remove it: the target supplies the rendezvous and ranks",
                    at,
                    code=Code.RESERVED,
                )
        return env


class SlurmSection(Section):
    partition: str | None = Field(default=None, pattern=SLURM_WORD, description="Partition (queue) to submit to.")
    account: str | None = Field(default=None, pattern=SLURM_WORD, description="Account charged for the job.")
    qos: str | None = Field(default=None, pattern=SLURM_WORD, description="Quality of service.")
    time_limit: str = Field(
        default="04:00:00",
        pattern=r"^(\d+-)?\d+(:\d{1,2}){0,2}$",
        description="Wall-clock limit as Slurm writes it: minutes, HH:MM:SS or D-HH:MM:SS.",
    )
    job_name: str | None = Field(
        default=None, pattern=SLURM_WORD, max_length=128, description="Job name; unset: ftc- and the run folder name."
    )
    gpu_request: Literal["gpus-per-node", "gres"] = Field(
        default="gpus-per-node", description="Ask for GPUs with --gpus-per-node, or with --gres=gpu:N on older sites."
    )
    gpu_type: str | None = Field(
        default=None, pattern=SLURM_WORD, description="GPU type in the request (e.g. h100), where the site names them."
    )
    cpus_per_task: int | None = Field(default=None, ge=1, le=4096, description="CPU cores per node (one task each).")
    memory: str | None = Field(
        default=None, pattern=r"^\d+[KMGT]?$", description="Memory per node, Slurm units: e.g. 200G; 0 means all."
    )
    exclusive: bool = Field(default=False, description="Take whole nodes, shared with no other job.")
    constraint: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.&|\[\]*:()!-]+$", description="Node features required (--constraint)."
    )
    signal_before_limit_s: int = Field(
        default=300,
        ge=0,
        le=65535,
        description="Seconds before the time limit that the job is warned (SIGUSR1) to checkpoint and requeue.",
    )
    requeue: bool = Field(default=True, description="Let Slurm requeue the job after preemption or node failure.")
    smoke_time_limit: str = Field(
        default="00:15:00",
        pattern=r"^(\d+-)?\d+(:\d{1,2}){0,2}$",
        description="Wall-clock limit of the --smoke-steps job, as time_limit.",
    )
    container_image: str | None = Field(
        default=None, min_length=1, description="Run inside this image through pyxis/enroot (srun --container-image)."
    )
    extra_sbatch: list[str] = Field(
        default=[], description="More #SBATCH options, one per entry, written as given (e.g. --mail-type=END)."
    )

    @field_validator("extra_sbatch")
    @classmethod
    def _literal_options(cls, lines: list[str]) -> list[str]:
        import re

        for line in lines:
            if not re.match(r"^--?[A-Za-z][^\s'\"`\\]*$", line):
                raise rule_error(
                    f"{line!r} is not one #SBATCH option",
                    "write one option like --mail-type=END: no spaces or quotes",
                    code=Code.FORMAT,
                )
            if "$" in line:
                raise rule_error(
                    f"{line!r}: Slurm reads #SBATCH lines before any shell, so $ is not expanded there",
                    "write the literal value",
                    code=Code.FORMAT,
                )
        return lines


class DockerSection(Section):
    base_image: str = Field(
        default="pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$",
        description="Image the Dockerfile starts FROM; it must have Python 3.11+ and pip.",
    )
    image: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._/:-]*$",
        description="Tag of the image built for the run; unset: ftc- and the run folder name.",
    )
    ftc_requirement: str = Field(
        default="ftc[train]",
        pattern=r"^[^\s'\"`$\\]+$",
        description="What pip installs in the image: a requirement (ftc[train]==0.1.0) or a URL, one word.",
    )
    shm_size: str = Field(
        default="16g", pattern=r"^\d+[bkmg]?$", description="Shared memory for data loader workers, docker units."
    )
    volumes: list[str] = Field(
        default=[], description="More host folders mounted at the same path in the container (read-only)."
    )


# trl 1.16's DPO losses that need no setting beyond beta (exo_pair needs label smoothing; sft is ftx).
