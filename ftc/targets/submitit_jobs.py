"""Submitting a run folder to Slurm from Python with submitit, for those who prefer it to sbatch.

It shares the slurm target's run folder and plan: write the folder with
`ftc launch SPEC --target slurm --dry-run`, then `submit_run(RUN_DIR)`. The [slurm] section and the
plan map onto submitit's parameters; the job calls the same runtime, which resumes from the newest
checkpoint when submitit requeues it after a timeout or preemption.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ftc.errors import FtcError

_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def slurm_minutes(limit: str) -> int:
    """A Slurm time limit in whole minutes: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S."""
    match = _SLURM_TIME.match(limit)
    if not match:
        raise FtcError(f"slurm.time_limit {limit!r} is not a Slurm time", "write minutes, HH:MM:SS or D-HH:MM:SS")
    days, first, second, third = (int(part) if part else None for part in match.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is not None:  # H:M:S
        hours, minutes, seconds = first, second, third
    else:  # M or M:S
        hours, minutes, seconds = 0, first, second or 0
    return math.ceil((days or 0) * 1440 + hours * 60 + minutes + seconds / 60)


def submitit_parameters(spec: Any, plan: Any) -> dict[str, Any]:
    """submitit's AutoExecutor parameters for the same request the sbatch script makes."""
    slurm = spec.slurm
    parameters: dict[str, Any] = {
        "timeout_min": slurm_minutes(slurm.time_limit),
        "nodes": plan.hardware.nodes,
        "tasks_per_node": 1,  # one launcher per node, as in job.sbatch
        "slurm_job_name": slurm.job_name or f"ftc-{Path(spec.output.dir).name}",
        "slurm_signal_delay_s": slurm.signal_before_limit_s,
    }
    if plan.backend.value == "cuda":
        parameters["gpus_per_node"] = plan.hardware.devices_per_node
    optional = {
        "slurm_partition": slurm.partition,
        "slurm_account": slurm.account,
        "slurm_qos": slurm.qos,
        "cpus_per_task": slurm.cpus_per_task,
        "slurm_mem": slurm.memory,
        "slurm_constraint": slurm.constraint,
        "slurm_exclusive": slurm.exclusive or None,
    }
    parameters.update({key: value for key, value in optional.items() if value is not None})
    extra = dict(option.lstrip("-").partition("=")[::2] for option in slurm.extra_sbatch)
    if extra:
        parameters["slurm_additional_parameters"] = {
            key.replace("-", "_"): value or True for key, value in extra.items()
        }
    return parameters


class TrainRun:
    """What the submitit job calls: the runtime on the run folder, requeued (and so resumed) on timeout."""

    def __call__(self, run_dir: str) -> None:
        from ftc.runtime.__main__ import main

        code = main([run_dir])
        if code != 0:
            raise RuntimeError(f"the ftc runtime exited with status {code}; see the job's log")

    def checkpoint(self, run_dir: str):
        import submitit

        return submitit.helpers.DelayedSubmission(self, run_dir)


def submit_run(run_dir: str | Path, logs: str | Path | None = None, cluster: str | None = None):
    """Submit an `ftc launch --target slurm --dry-run` run folder with submitit; returns the submitit Job."""
    try:
        import submitit
    except ImportError:
        raise FtcError("submitit is not installed", "pip install 'ftc[slurm]'") from None
    from ftc.runtime.run_folder import load_run_folder

    folder = load_run_folder(run_dir)
    executor = submitit.AutoExecutor(folder=str(logs or folder.path / "submitit"), cluster=cluster)
    executor.update_parameters(**submitit_parameters(folder.spec, folder.plan))
    return executor.submit(TrainRun(), str(folder.path))
