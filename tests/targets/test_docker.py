"""The docker target: devices from the plan, local paths mounted where the spec names them, and a
launch that says so, exiting 1, where no docker daemon answers."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ftc import __version__
from ftc.errors import FtcError
from ftc.targets import get_target
from ftc.targets.launcher import ONE_NODE, launch_command
from tests.specs import VALID
from tests.targets.rendering import make_job

TRAIN = tomllib.loads(VALID)["train"]


def test_gpus_and_npus_reach_docker_run(tmp_path):
    cuda = get_target("docker").render(make_job(tmp_path, run_name="a", hardware="8xH100-80GB"))
    assert "--gpus all" in cuda.files["docker_run.sh"]
    npu = get_target("docker").render(make_job(tmp_path, run_name="b", hardware="8xAscend910B-64GB"))
    script = npu.files["docker_run.sh"]
    assert "--device=/dev/davinci7" in script and "--device=/dev/davinci8" not in script
    assert "--device=/dev/davinci_manager" in script and "--gpus" not in script
    cpu = get_target("docker").render(make_job(tmp_path, run_name="c"))
    assert "--gpus" not in cpu.files["docker_run.sh"] and "--device" not in cpu.files["docker_run.sh"]


def test_dockerfile_installs_ftc_as_a_non_root_user(tmp_path):
    job = make_job(tmp_path, docker={"base_image": "nvcr.io/nvidia/pytorch:24.12-py3", "shm_size": "64g"})
    rendered = get_target("docker").render(job)
    dockerfile = rendered.files["Dockerfile"]
    assert dockerfile.splitlines()[2] == "FROM nvcr.io/nvidia/pytorch:24.12-py3"
    assert f'"pip", "install", "--no-cache-dir", "ftc[train]=={__version__}"' in dockerfile  # the ftc that wrote it
    assert dockerfile.index("pip") < dockerfile.index("USER ftc")
    assert "--shm-size=64g" in rendered.files["docker_run.sh"]
    assert rendered.command == ["bash", str(job.run_dir / "docker_run.sh")]
    assert "ftc-run" in rendered.files["docker_run.sh"]  # the image tag, from the folder name


def container_words(script: str) -> list[str]:
    """What `docker run` starts in the container: the words after the image on its last line."""
    last = script.rstrip().splitlines()[-1]
    assert last.lstrip().startswith('"$image" '), last
    return shlex.split(last.strip().removeprefix('"$image" '))


def test_several_devices_start_torchrun_in_the_container_as_the_local_target_does(tmp_path):
    job = make_job(tmp_path, hardware="8xH100-80GB", launch={"env": {"NCCL_DEBUG": "WARN"}})
    assert job.plan.world_size.value == 8
    script = get_target("docker").render(job).files["docker_run.sh"]
    words = container_words(script)
    # The shared launch line, with the image's own interpreter in place of the one that rendered it.
    assert words == [str(word) for word in launch_command(dataclasses.replace(job, python="python"), ONE_NODE)]
    assert words[:2] == ["env", "NCCL_DEBUG=WARN"]  # [launch.env] reaches the container too
    assert words[2:5] == ["python", "-m", "torch.distributed.run"] and words[-2:] == ["ftc.runtime", str(job.run_dir)]
    assert words[words.index("--nproc-per-node") + 1] == "8"
    assert "--gpus all --env CUDA_VISIBLE_DEVICES" in script and "--shm-size=16g" in script


def test_several_npus_get_their_devices_and_torchrun(tmp_path):
    script = get_target("docker").render(make_job(tmp_path, hardware="4xAscend910B-64GB")).files["docker_run.sh"]
    words = container_words(script)
    assert "torch.distributed.run" in words and words[words.index("--nproc-per-node") + 1] == "4"
    assert "--device=/dev/davinci3" in script and "--device=/dev/davinci4" not in script


def test_one_device_runs_the_runtime_alone(tmp_path):
    job = make_job(tmp_path, hardware="1xH100-80GB")
    words = container_words(get_target("docker").render(job).files["docker_run.sh"])
    assert words == ["python", "-m", "ftc.runtime", str(job.run_dir)]


def test_several_nodes_are_refused_with_the_slurm_way_to_run_containers(tmp_path):
    job = make_job(tmp_path, hardware="8xH100-80GB", nodes=2)
    with pytest.raises(FtcError) as refused:
        get_target("docker").render(job)
    assert "2 nodes" in refused.value.message
    assert "--target slurm" in refused.value.hint and "slurm.container_image" in refused.value.hint


def pip_installs(dockerfile: str) -> list[str]:
    return [line.split('"--no-cache-dir", ')[1].rstrip("]") for line in dockerfile.splitlines() if '"pip"' in line]


def test_the_image_installs_what_the_method_strategy_and_monitor_need(tmp_path):
    def installs(name: str, hardware: str = "1xH100-80GB", **sections) -> list[str]:
        job = make_job(tmp_path, run_name=name, hardware=hardware, **sections)
        return pip_installs(get_target("docker").render(job).files["Dockerfile"])

    assert installs("lora") == [f'"ftc[train]=={__version__}"']
    assert installs("qlora", train={**TRAIN, "method": "qlora"}) == [f'"ftc[train,qlora]=={__version__}"']
    assert installs("adam8", train={**TRAIN, "optimizer": "adamw_8bit"}) == [f'"ftc[train,qlora]=={__version__}"']
    zero = {**TRAIN, "method": "full", "strategy": "zero3"}
    assert installs("zero", hardware="8xH100-80GB", train=zero, monitor={"report_to": ["wandb"]}) == [
        f'"ftc[train,distributed,wandb]=={__version__}"'
    ]
    # The user's own ftc is installed as written; the extras then come from that installed ftc.
    own = {"ftc_requirement": "ftc[train]==0.1.0"}
    assert installs("own", docker=own, train={**TRAIN, "method": "qlora"}) == ['"ftc[train]==0.1.0"', '"ftc[qlora]"']
    assert installs("own-lora", docker=own) == ['"ftc[train]==0.1.0"']


def test_the_image_installs_the_kernels_the_plan_runs_flash_attn_against_the_installed_torch(tmp_path):
    model = tomllib.loads(VALID)["model"]

    def installs(name: str, hardware: str = "1xH100-80GB", **sections) -> list[str]:
        job = make_job(tmp_path, run_name=name, hardware=hardware, **sections)
        return pip_installs(get_target("docker").render(job).files["Dockerfile"])

    liger = {**TRAIN, "kernels": ["liger"]}
    assert installs("liger", train=liger) == [f'"ftc[train,liger]=={__version__}"']
    # flash-attn's build imports torch: a second install, after ftc[train], without build isolation.
    flash = {**model, "attention": "flash"}
    assert installs("flash", train=liger, model=flash) == [
        f'"ftc[train,liger]=={__version__}"',
        f'"--no-build-isolation", "ftc[flash]=={__version__}"',
    ]
    assert installs("npu-flash", hardware="1xAscend910B-64GB", model=flash) == [f'"ftc[train]=={__version__}"']
    own = {"ftc_requirement": "ftc[train]==0.1.0"}
    assert installs("own-flash", docker=own, model=flash) == [
        '"ftc[train]==0.1.0"',
        '"--no-build-isolation", "ftc[flash]"',
    ]


def launch_docker(tmp_path: Path, path_dirs: list[Path]) -> subprocess.CompletedProcess:
    spec = tmp_path / "job.toml"
    spec.write_text(VALID)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "alpaca_en.json").write_text("[]")
    env = {**os.environ, "PATH": os.pathsep.join(map(str, path_dirs))}
    command = [sys.executable, "-m", "ftc", "launch", str(spec), "-t", "docker", "-H", "cpu", "--overwrite"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_launch_without_a_docker_daemon_says_so_and_exits_1(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "mkdir"):  # what the environment needs besides docker
        os.symlink(subprocess.check_output(["bash", "-c", f"command -v {tool}"], text=True).strip(), bin_dir / tool)
    missing = launch_docker(tmp_path, [bin_dir])
    assert missing.returncode == 1 and "error: docker is not installed" in missing.stderr, missing.stderr

    # A docker client whose daemon is not running, as on this kind of machine.
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
    )
    (bin_dir / "docker").chmod(0o755)
    no_daemon = launch_docker(tmp_path, [bin_dir])
    assert no_daemon.returncode == 1 and "error: no docker daemon answers here: Cannot connect" in no_daemon.stderr
    assert "--dry-run" in no_daemon.stderr and "Traceback" not in no_daemon.stderr
    run_dir = tmp_path / "runs" / "quickstart"
    assert {"Dockerfile", "docker_run.sh"} <= {path.name for path in run_dir.iterdir()}  # written, as with --dry-run


def test_dry_run_writes_and_shows_the_dockerfile_and_script_without_docker(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(VALID)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alpaca_en.json").write_text("[]")
    command = [sys.executable, "-m", "ftc", "launch", str(spec), "-t", "docker", "-H", "cpu", "--dry-run"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PATH": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "FROM pytorch/pytorch" in result.stdout and "exec docker run --rm" in result.stdout
    assert (tmp_path / "runs" / "quickstart" / "Dockerfile").is_file()


def test_a_cache_dir_of_the_spec_is_made_and_mounted_writable(tmp_path):
    data = tomllib.loads(VALID)["data"] | {"cache_dir": str(tmp_path / "prepared data")}
    script = get_target("docker").render(make_job(tmp_path, data=data)).files["docker_run.sh"]
    words = shlex.split(script.replace("\\\n", " "), comments=True)
    folder = tmp_path / "prepared data"
    assert f"type=bind,source={folder},target={folder}" in words  # read-write: no readonly field
    mkdir = words.index("mkdir")
    assert str(folder) in words[mkdir : mkdir + 4]
