"""The docker target: devices from the plan, local paths mounted where the spec names them, and a
launch that says so, exiting 1, where no docker daemon answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ftc import __version__
from ftc.targets import get_target
from tests.specs import VALID
from tests.targets.rendering import make_job


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
    assert dockerfile.index("USER ftc") < dockerfile.index("ENTRYPOINT")
    assert "--shm-size=64g" in rendered.files["docker_run.sh"]
    assert rendered.command == ["bash", str(job.run_dir / "docker_run.sh")]
    assert "ftc-run" in rendered.files["docker_run.sh"]  # the image tag, from the folder name


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
