"""The submitit bridge asks Slurm for what job.sbatch asks, from the same spec and plan, and runs that job.sbatch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ftc.errors import FtcError
from ftc.targets.local import LocalTarget
from ftc.targets.slurm import JOB_SCRIPT, NODE_SCRIPT, SlurmTarget
from ftc.targets.submitit_jobs import TrainRun, slurm_minutes, submit_run, submitit_parameters
from tests.targets.rendering import make_job, recorded, torchrun_options, write_recorders


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
    job = make_job(tmp_path, run_name="my run!", hardware="8xH100-80GB", nodes=2, slurm=slurm)
    parameters = submitit_parameters(job.spec, job.plan)
    assert parameters == {
        "timeout_min": 1440, "nodes": 1, "tasks_per_node": 1, "slurm_use_srun": False, "slurm_job_name": "ftc-my_run",
        "slurm_setup": ["trap '' TERM"], "gpus_per_node": 8, "slurm_partition": "gpu", "slurm_account": "proj",
        "slurm_mem": "200G", "slurm_exclusive": True,
        "slurm_additional_parameters": {"nodes": 2, "signal": "USR1@120", "requeue": True, "mail_type": "END"},
    }  # fmt: skip
    assert f"--job-name={parameters['slurm_job_name']}" in SlurmTarget().render(job).files[JOB_SCRIPT]
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="slurm")
    executor.update_parameters(**parameters)  # raises on a name submitit does not know
    # The batch script submitit would write (a private method, read here only): the plan's nodes and the runtime's
    # warning signal win over submitit's own, and its command runs in the batch step, where job.sbatch's srun
    # starts the launchers.
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit logs", "uid")
    options = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]
    assert {"--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=8", "--signal=USR1@120", "--requeue"} <= set(options)
    assert not any(option.startswith(("--nodes=1", "--signal=USR2")) for option in options)
    command = script.splitlines()
    assert command.index("trap '' TERM") < command.index("python -m submitit.core._submit logs")


def test_a_job_that_asks_for_no_warning_signal_is_refused(tmp_path):
    job = make_job(tmp_path, slurm={"signal_before_limit_s": 0})
    with pytest.raises(FtcError, match="signal_before_limit_s"):
        submitit_parameters(job.spec, job.plan)


RECORDING_PYTHON = """#!{python}
import json, os, sys
if sys.argv[1:2] == ["-c"]:  # job.sbatch's free-port one-liner: run it for real
    os.execv({python!r}, [{python!r}, *sys.argv[1:]])
with open({log!r}, "a", encoding="utf-8") as handle:
    handle.write(json.dumps({{"command": "python", "argv": sys.argv[1:]}}) + "\\n")
"""


TWO_PROCESS_PLANS = [("2xcpu", 1, None), ("2xH100-80GB", 1, 2), ("1xH100-80GB", 2, 1)]  # hardware, nodes, GPUs a node


def write_files(run_dir: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize(("hardware", "nodes", "gpus"), TWO_PROCESS_PLANS)
def test_the_submitit_job_starts_the_world_the_plan_expects(tmp_path, monkeypatch, hardware, nodes, gpus):
    """Run what the submitit job runs, with stand-ins for srun and scontrol and a python that records its argv.

    The runtime's pre-flight refuses a world other than the plan's: the torchrun each node starts must make
    nnodes × nproc-per-node, the WORLD_SIZE it gives every process, the plan's world size.
    """
    log = tmp_path / "calls.jsonl"
    python = tmp_path / "python"
    python.write_text(RECORDING_PYTHON.format(python=sys.executable, log=str(log)), encoding="utf-8")
    python.chmod(0o755)
    job = make_job(tmp_path, hardware=hardware, nodes=nodes, python=str(python))
    assert job.plan.world_size.value == 2
    write_files(job.run_dir, SlurmTarget().render(job).files)
    write_recorders(tmp_path / "bin", log, ("srun", "scontrol"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    # What Slurm sets in the batch step of a job on `nodes` nodes; srun's stand-in passes it on to the node script.
    slurm_job = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "node-1", "SLURM_JOB_NUM_NODES": str(nodes)}
    for name, value in {**slurm_job, "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(name, value)

    TrainRun()(str(job.run_dir))

    parameters = submitit_parameters(job.spec, job.plan)
    assert parameters["slurm_additional_parameters"]["nodes"] == nodes and parameters["tasks_per_node"] == 1
    assert parameters.get("gpus_per_node") == gpus
    calls = recorded(log)
    [srun] = [call["argv"] for call in calls if call["command"] == "srun"]
    assert srun[:2] == [f"--nodes={nodes}", "--ntasks-per-node=1"]  # one launcher on each node
    assert srun[-2:] == ["bash", str(job.run_dir / NODE_SCRIPT)]
    [launcher] = [call["argv"] for call in calls if call["command"] == "python"]
    options = torchrun_options(["torch.distributed.run", *launcher[2:]])
    assert int(options["--nnodes"]) * int(options["--nproc-per-node"]) == job.plan.world_size.value
    assert (options["--nnodes"], options["--node-rank"]) == (str(nodes), "0")
    assert options["--rdzv-endpoint"].startswith("node-1:")
    assert launcher[-3:] == ["--module", "ftc.runtime", str(job.run_dir)]


def test_a_run_folder_without_job_sbatch_is_refused_before_submitting(tmp_path):
    pytest.importorskip("submitit")
    job = make_job(tmp_path)
    write_files(job.run_dir, LocalTarget().render(job).files)
    with pytest.raises(FtcError, match="--target slurm --dry-run"):
        submit_run(job.run_dir)
