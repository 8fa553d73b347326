"""The submitit bridge asks Slurm for what job.sbatch asks, from the same spec and plan."""

from __future__ import annotations

import os

import pytest

from ftc.errors import FtcError
from ftc.targets.submitit_jobs import TrainRun, slurm_minutes, submitit_parameters
from tests.targets.rendering import make_job


@pytest.mark.parametrize(
    ("limit", "minutes"),
    [("30", 30), ("30:30", 31), ("04:00:00", 240), ("1-0", 1440), ("1-2:30", 1590), ("2-00:00:01", 2881)],
)
def test_slurm_time_limits_in_minutes(limit, minutes):
    assert slurm_minutes(limit) == minutes


def test_a_time_that_is_not_slurms_is_refused():
    with pytest.raises(FtcError):
        slurm_minutes("4h")


def test_parameters_match_the_sbatch_request_and_submitit_accepts_them(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    # submitit's Slurm executor only looks for srun on PATH; nothing is submitted, so a stand-in that refuses to
    # run lets the parameter names be checked on a machine without Slurm.
    stand_in = tmp_path / "bin" / "srun"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\necho 'not a Slurm cluster' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stand_in.parent}{os.pathsep}{os.environ['PATH']}")
    slurm = {"partition": "gpu", "account": "proj", "time_limit": "1-00:00:00", "memory": "200G",
             "exclusive": True, "extra_sbatch": ["--mail-type=END"], "signal_before_limit_s": 120}  # fmt: skip
    job = make_job(tmp_path, run_name="my-run", hardware="8xH100-80GB", nodes=2, slurm=slurm)
    parameters = submitit_parameters(job.spec, job.plan)
    assert parameters == {
        "timeout_min": 1440, "nodes": 2, "tasks_per_node": 1, "gpus_per_node": 8, "slurm_job_name": "ftc-my-run",
        "slurm_signal_delay_s": 120, "slurm_partition": "gpu", "slurm_account": "proj", "slurm_mem": "200G",
        "slurm_exclusive": True, "slurm_additional_parameters": {"mail_type": "END"},
    }  # fmt: skip
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="slurm")
    executor.update_parameters(**parameters)  # raises on a name submitit does not know
    checkpoint = TrainRun().checkpoint(str(job.run_dir))
    assert isinstance(checkpoint, submitit.helpers.DelayedSubmission)
