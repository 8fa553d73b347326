"""The Slurm target: an sbatch script and a per-node launcher in the run folder, submitted with sbatch.

The job asks for a warning signal before its time limit and is requeueable; the runtime checkpoints
on the signal and a requeued job resumes from the checkpoint (ftc.runtime.distributed.preemption, .resume).
With smoke steps, a one-node job of that many steps runs first and the full job waits on its success.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ftc import __version__
from ftc.compiler.plan import Decision, Plan
from ftc.devices.backends import BACKENDS
from ftc.errors import FtcError
from ftc.runs.stopping import WARNING_SIGNAL
from ftc.spec.sections.launch import SlurmSection
from ftc.targets.base import Job, Rendered, run_folder_files
from ftc.targets.launcher import FROM_NODE_ENVIRONMENT, launch_command
from ftc.targets.render import render
from ftc.targets.slurm_jobs import SlurmJobRecord, write_job_record

JOB_SCRIPT = "job.sbatch"
NODE_SCRIPT = "node_launch.sh"
SMOKE_FOLDER = "smoke"
# What an #SBATCH option may hold: Slurm splits these lines on blanks and strips quotes itself, and no
# shell ever expands them, so anything beyond one plain word would be read other than it looks.
_SBATCH_OPTION = re.compile(r"^--?[A-Za-z][A-Za-z0-9-]*(=[^\s'\"`\\$]+)?$")


def launcher_command(job: Job) -> list[str]:
    """What srun starts on each node: torchrun (or the runtime alone), meeting at job.sbatch's rendezvous."""
    return launch_command(job, FROM_NODE_ENVIRONMENT)


def job_name(slurm: SlurmSection, run_dir: Path) -> str:
    """The name the job goes by in the queue, whether job.sbatch or submitit asks for it."""
    if slurm.job_name:
        return slurm.job_name
    # From the folder name, reduced to the characters an #SBATCH line keeps as written.
    return "ftc-" + (re.sub(r"[^A-Za-z0-9_.+-]+", "_", run_dir.name).strip("_.-") or "run")


def gpus_per_node(plan: Plan) -> int:
    """The GPUs to ask Slurm for on each node: the plan's devices where Slurm schedules them as GPUs, else none."""
    return plan.hardware.devices_per_node if BACKENDS[plan.backend.value].slurm_gpus else 0


def warning_signal(slurm: SlurmSection) -> str | None:
    """--signal's value: the warning signal, which the runtime checkpoints and requeues on, that long before the end."""
    if not slurm.signal_before_limit_s:
        return None
    return f"{WARNING_SIGNAL.name.removeprefix('SIG')}@{slurm.signal_before_limit_s}"


def submit_command(script: Path, run_dir: Path, after: str | None = None) -> list[str]:
    """sbatch, as argv: the run folder goes in as one argument, never through a shell or an #SBATCH line."""
    command = ["sbatch", "--parsable", f"--chdir={run_dir}"]
    if after:
        command += [f"--dependency=afterok:{after}", "--kill-on-invalid-dep=yes"]
    return [*command, str(script)]


@dataclass
class SlurmTarget:
    name = "slurm"
    smoke_steps: int = 0

    def render(self, job: Job) -> Rendered:
        slurm = job.spec.slurm
        files = {
            **run_folder_files(job),
            **self._scripts(job, job.plan.hardware.nodes, job_name(slurm, job.run_dir), slurm.time_limit),
        }
        if self.smoke_steps:
            smoke = smoke_job(job, self.smoke_steps)
            smoke_scripts = self._scripts(smoke, 1, job_name(slurm, job.run_dir) + "-smoke", slurm.smoke_time_limit)
            smoke_files = {**run_folder_files(smoke), **smoke_scripts}
            files.update({f"{SMOKE_FOLDER}/{name}": text for name, text in smoke_files.items()})
        return Rendered(
            files=files,
            command=submit_command(job.run_dir / JOB_SCRIPT, job.run_dir),
            executable=frozenset(name for name in files if name.endswith((".sbatch", ".sh"))),
        )

    def _scripts(self, job: Job, nodes: int, name: str, time_limit: str) -> dict[str, str]:
        slurm, run_dir = job.spec.slurm, job.run_dir
        if slurm.container_image and re.search(r"[,:\s]", str(run_dir)):
            raise FtcError(
                f"output.dir {run_dir}: pyxis cannot mount a path holding ',', ':' or blanks",
                "choose a run folder path without them, or unset slurm.container_image",
            )
        values = {
            "version": __version__,
            "spec_path": job.spec_path,
            "run_dir": run_dir,
            "python": job.python,
            "launcher": launcher_command(job),
        }
        script = render(
            "slurm_job.sbatch.j2",
            **values,
            submit_command=shlex.join(submit_command(run_dir / JOB_SCRIPT, run_dir)),
            job_name=name,
            nodes=nodes,
            gpus_per_node=gpus_per_node(job.plan),
            time_limit=time_limit,
            warning_signal=warning_signal(slurm),
            slurm=slurm,
            secrets=job.spec.launch.secrets,
            node_script=run_dir / NODE_SCRIPT,
            container_flags=container_flags(slurm.container_image, run_dir),
        )
        check_sbatch_lines(script)
        return {JOB_SCRIPT: script, NODE_SCRIPT: render("slurm_node.sh.j2", **values)}

    def start(self, job: Job, rendered: Rendered) -> int:
        if shutil.which("sbatch") is None:
            raise FtcError(
                "sbatch not found: this machine is not a Slurm submit host", "run ftc launch on a login node"
            )
        smoke_id = None
        if self.smoke_steps:
            smoke_dir = job.run_dir / SMOKE_FOLDER
            smoke_id = submit(submit_command(smoke_dir / JOB_SCRIPT, smoke_dir))
            write_job_record(smoke_dir, SlurmJobRecord(job_id=smoke_id))
            print(f"submitted smoke job {smoke_id}: {self.smoke_steps} steps on one node, in {smoke_dir}")
        command = submit_command(job.run_dir / JOB_SCRIPT, job.run_dir, after=smoke_id)
        job_id = submit(command)
        write_job_record(job.run_dir, SlurmJobRecord(job_id=job_id, smoke_job_id=smoke_id))
        waits = f", after smoke job {smoke_id} succeeds" if smoke_id else ""
        print(f"submitted slurm job {job_id}{waits}")
        print(f"follow it: ftc status {job.run_dir} · ftc logs {job.run_dir} -f · ftc cancel {job.run_dir}")
        return 0


def submit(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise FtcError(f"sbatch refused the job: {result.stderr.strip()}", "check the [slurm] section of the spec")
    return result.stdout.strip().split(";")[0]  # --parsable prints "id" or "id;cluster"


def smoke_job(job: Job, steps: int) -> Job:
    """The same run cut to `steps` optimizer steps, in a folder of its own inside the run folder."""
    run_dir = job.run_dir / SMOKE_FOLDER
    # Every step logged: a smoke run is read step by step.
    cut = {"max_steps": steps, "epochs": None, "save_steps": steps, "logging_steps": 1}
    train = job.spec.train.model_copy(update=cut)
    spec = job.spec.model_copy(
        update={"train": train, "output": job.spec.output.model_copy(update={"dir": str(run_dir)})}
    )
    return dataclasses.replace(job, spec=spec, plan=one_node_plan(job.plan), run_dir=run_dir)


def one_node_plan(plan: Plan) -> Plan:
    """The plan on the first node alone: the same global batch, from more accumulation steps."""
    nodes = plan.hardware.nodes
    if nodes == 1:
        return plan
    return dataclasses.replace(
        plan,
        hardware=dataclasses.replace(plan.hardware, nodes=1),
        world_size=Decision(plan.hardware.devices_per_node, "smoke run: the devices of one node"),
        gradient_accumulation_steps=Decision(
            plan.gradient_accumulation_steps.value * nodes,
            f"smoke run: the full run's global batch on 1 of {nodes} nodes",
        ),
    )


def container_flags(image: str | None, run_dir: Path) -> list[str]:
    """pyxis/enroot: the image, with the run folder mounted at the same path so every path in the spec holds."""
    if not image:
        return []
    return [f"--container-image={image}", f"--container-mounts={run_dir}:{run_dir}", f"--container-workdir={run_dir}"]


def check_sbatch_lines(script: str) -> None:
    """Every #SBATCH option is one literal word; the spec's patterns keep it so, this keeps the template so."""
    for line in script.splitlines():
        if line.startswith("#SBATCH"):
            option = line.removeprefix("#SBATCH").strip()
            if not _SBATCH_OPTION.match(option):
                raise FtcError(f"cannot write {line!r} literally", "use plain words in the [slurm] section")
