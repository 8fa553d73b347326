"""The Slurm target's rendered files: literal #SBATCH values from [slurm] and the plan, the per-node launch."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from ftc.errors import FtcError
from ftc.targets import get_target
from ftc.targets.slurm import check_sbatch_lines
from tests.targets.rendering import make_job


def sbatch_options(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]


def test_sbatch_asks_for_what_the_spec_and_plan_say(tmp_path):
    slurm = {
        "partition": "gpu",
        "account": "proj-42",
        "qos": "high",
        "time_limit": "1-12:00:00",
        "cpus_per_task": 32,
        "memory": "480G",
        "exclusive": True,
        "constraint": "h100&ib",
        "gpu_type": "h100",
        "extra_sbatch": ["--mail-type=END"],
        "signal_before_limit_s": 600,
    }
    job = make_job(tmp_path, run_name="llama run", hardware="8xH100-80GB", nodes=2, slurm=slurm)
    rendered = get_target("slurm").render(job)
    options = sbatch_options(rendered.files["job.sbatch"])
    assert options == [
        "--job-name=ftc-llama_run", "--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=h100:8",
        "--cpus-per-task=32", "--mem=480G", "--time=1-12:00:00", "--partition=gpu", "--account=proj-42",
        "--qos=high", "--constraint=h100&ib", "--exclusive", "--output=slurm-%j.log", "--error=slurm-%j.log",
        "--open-mode=append", "--requeue", "--signal=USR1@600", "--mail-type=END",
    ]  # fmt: skip
    assert rendered.command == ["sbatch", "--parsable", f"--chdir={job.run_dir}", str(job.run_dir / "job.sbatch")]
    assert rendered.executable == {"job.sbatch", "node_launch.sh"}
    script = rendered.files["job.sbatch"]
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in script
    assert 'srun --nodes="$NNODES" --ntasks-per-node=1' in script
    node = rendered.files["node_launch.sh"]
    assert 'NODE_RANK="$SLURM_NODEID"' in node
    assert node.rstrip().endswith(f"ftc.runtime {shlex.quote(str(job.run_dir))}")  # the launcher, then the runtime


def test_gres_request_no_gpus_on_cpu_and_no_requeue(tmp_path):
    gres = get_target("slurm").render(
        make_job(tmp_path, run_name="a", hardware="4xA100-80GB", slurm={"gpu_request": "gres"})
    )
    assert "--gres=gpu:4" in sbatch_options(gres.files["job.sbatch"])
    cpu = get_target("slurm").render(make_job(tmp_path, run_name="b", slurm={"requeue": False}))
    options = sbatch_options(cpu.files["job.sbatch"])
    assert not any("gpu" in option for option in options) and "--no-requeue" in options


def test_container_image_goes_to_srun_with_the_run_folder_mounted(tmp_path):
    job = make_job(tmp_path, slurm={"container_image": "nvcr.io/nvidia/pytorch:24.12-py3"})
    script = get_target("slurm").render(job).files["job.sbatch"]
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    assert "--container-image=nvcr.io/nvidia/pytorch:24.12-py3" in srun
    assert f"--container-mounts={job.run_dir}:{job.run_dir}" in srun


def test_smoke_steps_render_a_one_node_short_job_of_that_many_steps(tmp_path):
    job = make_job(tmp_path, hardware="8xH100-80GB", nodes=2, slurm={"smoke_time_limit": "20"})
    files = get_target("slurm", smoke_steps=5).render(job).files
    smoke = sbatch_options(files["smoke/job.sbatch"])
    assert "--nodes=1" in smoke and "--time=20" in smoke and "--job-name=ftc-run-smoke" in smoke
    assert (
        "max_steps = 5" in files["smoke/spec.toml"] and f'dir = "{job.run_dir / "smoke"}"' in files["smoke/spec.toml"]
    )
    assert "--nodes=2" in sbatch_options(files["job.sbatch"])
    full, smoke_plan = json.loads(files["plan.json"]), json.loads(files["smoke/plan.json"])
    assert (smoke_plan["world_size"], full["world_size"]) == (8, 16)
    assert smoke_plan["global_batch_size"] == full["global_batch_size"]  # more accumulation on one node


def test_smoke_steps_are_for_slurm_only():
    with pytest.raises(FtcError) as caught:
        get_target("local", smoke_steps=3)
    assert "--smoke-steps" in caught.value.message


@pytest.mark.parametrize("line", ["#SBATCH --job-name=a b", "#SBATCH --output=$HOME/x", "#SBATCH --comment='x'"])
def test_an_sbatch_line_that_is_not_one_literal_word_is_refused(line):
    with pytest.raises(FtcError):
        check_sbatch_lines(f"#!/bin/bash\n{line}\n")


def test_the_job_name_keeps_only_what_an_sbatch_line_reads_as_written(tmp_path):
    job = make_job(tmp_path, run_name="$(x) `y` ü")
    [name] = [o for o in sbatch_options(get_target("slurm").render(job).files["job.sbatch"]) if "job-name" in o]
    assert re.fullmatch(r"--job-name=ftc-[A-Za-z0-9_.+-]+", name)
