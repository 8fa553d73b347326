"""Submitting a run folder to Slurm from Python with submitit, for those who prefer it to sbatch.

It submits the slurm target's run folder: write the folder with
`ftc launch SPEC --target slurm --dry-run`, then `submit_run(RUN_DIR)`. submitit asks Slurm for the
allocation job.sbatch's #SBATCH lines ask for, and its job runs that job.sbatch inside it: the same
rendezvous, the same node_launch.sh on every node — torchrun starting the plan's processes — and the
same warning signal, on which the runtime checkpoints and requeues the job itself; a requeued job
runs job.sbatch again and the runtime resumes from its newest checkpoint.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

from ftc.errors import FtcError
from ftc.runs.stopping import EXIT_STOPPED
from ftc.targets.slurm import JOB_SCRIPT, gpus_per_node, job_name, warning_signal

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
    warning = warning_signal(slurm)
    if warning is None:
        raise FtcError(
            "slurm.signal_before_limit_s = 0: submitit always has Slurm send a warning signal",
            "set slurm.signal_before_limit_s above 0, or submit with `ftc launch SPEC --target slurm`",
        )
    parameters: dict[str, Any] = {
        "timeout_min": slurm_minutes(slurm.time_limit),
        # To submitit the job is one task, its batch step, which runs job.sbatch without an srun of its own;
        # job.sbatch's srun starts the launcher on every node. So submitit counts one node and waits for one
        # result, and the plan's nodes go to Slurm directly (below).
        "nodes": 1,
        "tasks_per_node": 1,
        "slurm_use_srun": False,
        "slurm_job_name": job_name(slurm, Path(spec.output.dir)),  # the spec is resolved: output.dir is the run folder
        # As job.sbatch's shell does: Slurm's SIGTERM (requeue, cancel, preemption) reaches the runtime, which
        # saves a checkpoint on it; submitit's batch shell keeps waiting for it instead of ending the job first.
        "slurm_setup": ["trap '' TERM"],
    }
    if gpus_per_node(plan):
        parameters["gpus_per_node"] = gpus_per_node(plan)
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
    parameters["slurm_additional_parameters"] = {
        "nodes": plan.hardware.nodes,
        # In place of submitit's SIGUSR2, which nothing in the job handles: it would end the runtime unsaved.
        "signal": warning,
        "requeue" if slurm.requeue else "no_requeue": True,
        # Last, as in job.sbatch, so that the spec's own options win.
        **{key.replace("-", "_"): value or True for key, value in extra.items()},
    }
    return parameters


class TrainRun:
    """What the submitit job runs in its batch step: the run folder's job.sbatch, as the slurm target's job does."""

    def __call__(self, run_dir: str) -> None:
        status = subprocess.run(["bash", str(Path(run_dir) / JOB_SCRIPT)]).returncode
        if status == 0:
            return
        if status == EXIT_STOPPED:
            # Stopped by Slurm's signal after a checkpoint: the job is requeued (by the runtime on the warning, by
            # Slurm on preemption) or cancelled. Leaving without a result keeps submitit waiting for the next run's.
            raise SystemExit(status)
        raise RuntimeError(f"{JOB_SCRIPT} exited with status {status}; see the job's log")


def submit_run(run_dir: str | Path, logs: str | Path | None = None, cluster: str | None = None):
    """Submit an `ftc launch --target slurm --dry-run` run folder with submitit; returns the submitit Job."""
    try:
        import submitit
    except ImportError:
        raise FtcError("submitit is not installed", "pip install 'ftc[slurm]'") from None
    from ftc.runs.folder import load_run_folder

    folder = load_run_folder(run_dir)
    if not (folder.path / JOB_SCRIPT).is_file():
        raise FtcError(
            f"{folder.path} has no {JOB_SCRIPT}: it was not written for the slurm target",
            "write it with `ftc launch SPEC --target slurm --dry-run`",
        )
    executor = submitit.AutoExecutor(folder=str(logs or folder.path / "submitit"), cluster=cluster)
    executor.update_parameters(**submitit_parameters(folder.spec, folder.plan))
    return executor.submit(TrainRun(), str(folder.path))
