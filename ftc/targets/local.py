"""The local target: a run.sh that starts the runtime as its own process on this machine."""

from __future__ import annotations

import subprocess

from ftc import __version__
from ftc.targets.base import Job, Rendered, run_folder_files
from ftc.targets.render import render


def runtime_command(job: Job) -> list[str]:
    """The one way every target starts training: the shared runtime, given the run folder."""
    return [job.python, "-m", "ftc.runtime", str(job.run_dir)]


class LocalTarget:
    name = "local"

    def render(self, job: Job) -> Rendered:
        script = render(
            "local_run.sh.j2",
            version=__version__,
            spec_path=job.spec_path,
            run_dir=job.run_dir,
            runtime_command=runtime_command(job),
        )
        files = {**run_folder_files(job), "run.sh": script}
        return Rendered(files=files, command=["bash", str(job.run_dir / "run.sh")], executable=frozenset({"run.sh"}))

    def start(self, job: Job, rendered: Rendered) -> int:
        process = subprocess.Popen(rendered.command, cwd=job.run_dir)
        try:
            return process.wait()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C; let it save and exit rather than orphaning it.
            return process.wait()
