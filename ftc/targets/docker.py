"""The docker target: a Dockerfile and a docker_run.sh that builds the image and runs the runtime in it.

Local paths (the run folder, a local model, local datasets, [docker].volumes) are mounted at the
same path inside the container, so the resolved spec in the run folder is read unchanged there.
The container runs the launch line every target shares (`launcher.launch_command`): the runtime alone,
or torchrun starting it on each of the node's devices. One node only: several containers on several
hosts are the slurm target's job (slurm.container_image).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
import subprocess
from pathlib import Path

from ftc import __version__
from ftc.devices.backends import BACKENDS
from ftc.errors import FtcError
from ftc.install.extras import BASE_EXTRA, extras_for
from ftc.targets.base import Job, Rendered, run_folder_files
from ftc.targets.launcher import ONE_NODE, Word, launch_command
from ftc.targets.render import render

DOCKERFILE = "Dockerfile"
RUN_SCRIPT = "docker_run.sh"
CONTAINER_PYTHON = "python"  # the image's interpreter, which pip installed ftc into


def image_name(job: Job) -> str:
    if job.spec.docker.image:
        return job.spec.docker.image
    # Docker image names are lowercase words: the folder name reduced to what a tag keeps.
    return "ftc-" + (re.sub(r"[^a-z0-9_.-]+", "-", job.run_dir.name.lower()).strip("-._") or "run")


def ftc_requirements(job: Job) -> list[list[str]]:
    """pip's arguments for each install into the image: ftc with the extras this run needs (ftc.install.extras); then
    the extras whose packages build against the installed torch (flash-attn), without build isolation."""
    docker = job.spec.docker
    extras, built_on_torch = extras_for(job.spec, job.plan, isolated=True), extras_for(job.spec, job.plan, False)
    if "ftc_requirement" not in docker.model_fields_set:
        # Unset, the image gets this very version: the runtime inside must read the run folder this ftc wrote.
        installs = [[f"ftc[{','.join((BASE_EXTRA, *extras))}]=={__version__}"]]
        pinned = f"=={__version__}"
    else:
        # The user's own ftc (a version, a URL) first; pip then keeps it and adds only the extras' packages.
        installs = [[docker.ftc_requirement]] + ([[f"ftc[{','.join(extras)}]"]] if extras else [])
        pinned = ""
    if built_on_torch:
        installs.append(["--no-build-isolation", f"ftc[{','.join(built_on_torch)}]{pinned}"])
    return installs


def container_command(job: Job) -> list[Word]:
    """The launch line of the local target, run by the image's Python on the one node the container is."""
    if job.plan.hardware.nodes > 1:
        raise FtcError(
            f"the docker target runs on one node, but the plan is for {job.plan.hardware.nodes} nodes",
            "use --target slurm with slurm.container_image set to an image with ftc, or launch with --nodes 1",
        )
    return launch_command(dataclasses.replace(job, python=CONTAINER_PYTHON), ONE_NODE)


def device_flags(job: Job) -> list[str]:
    """What hands the plan's devices on this node to the container, as its backend's record says."""
    return BACKENDS[job.plan.backend.value].docker.run_flags(job.plan.hardware.devices_per_node)


def bind_mount(path: str, read_only: bool) -> str:
    """One --mount value; docker reads it as CSV, so a comma or quote in a path is CSV-quoted, not split."""
    fields = ["type=bind", f"source={path}", f"target={path}"] + (["readonly"] if read_only else [])
    line = io.StringIO()
    # The newline terminator makes the writer quote a field holding one; it is not part of the value.
    csv.writer(line, lineterminator="\n").writerow(fields)
    return line.getvalue().removesuffix("\n")


def mounts(job: Job) -> list[str]:
    spec = job.spec
    inputs = [spec.model.name_or_path, *(dataset.path for dataset in spec.data.datasets), *spec.docker.volumes]
    local = dict.fromkeys(path for path in inputs if Path(path).is_absolute())  # hub ids are fetched inside
    writable = [str(job.run_dir), *writable_folders(job)]
    return [bind_mount(path, read_only=False) for path in writable] + [
        bind_mount(path, read_only=True) for path in local
    ]


def writable_folders(job: Job) -> list[str]:
    """Host folders the container writes besides its run folder: data.cache_dir, where prepared data is kept
    between runs (without it, the cache lives in the mounted Hugging Face cache)."""
    return [job.spec.data.cache_dir] if job.spec.data.cache_dir else []


class DockerTarget:
    name = "docker"

    def render(self, job: Job) -> Rendered:
        docker = job.spec.docker
        common = {"version": __version__, "spec_path": job.spec_path}
        dockerfile = render(
            "docker.Dockerfile.j2", **common, base_image=docker.base_image, requirements=ftc_requirements(job)
        )
        script = render(
            "docker_run.sh.j2",
            **common,
            run_dir=job.run_dir,
            image=image_name(job),
            dockerfile=job.run_dir / DOCKERFILE,
            shm_size=docker.shm_size,
            device_flags=device_flags(job),
            mounts=mounts(job),
            writable_folders=writable_folders(job),
            secrets=job.spec.launch.secrets,
            command=container_command(job),
        )
        files = {**run_folder_files(job), DOCKERFILE: dockerfile, RUN_SCRIPT: script}
        return Rendered(
            files=files, command=["bash", str(job.run_dir / RUN_SCRIPT)], executable=frozenset({RUN_SCRIPT})
        )

    def start(self, job: Job, rendered: Rendered) -> int:
        require_docker_daemon()
        return subprocess.run(rendered.command, cwd=job.run_dir).returncode


def require_docker_daemon() -> None:
    hint = "start the docker service, or run elsewhere; --dry-run writes the Dockerfile and script without docker"
    if shutil.which("docker") is None:
        raise FtcError("docker is not installed on this machine", hint)
    try:
        answer = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                                timeout=30)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FtcError("the docker daemon did not answer within 30 s", hint) from None
    if answer.returncode != 0:
        reason = (answer.stderr.strip().splitlines() or ["docker info failed"])[-1]
        raise FtcError(f"no docker daemon answers here: {reason}", hint)
