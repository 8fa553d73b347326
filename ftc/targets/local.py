"""The local target: a run.sh that starts the runtime on this machine, as one process or one per device."""

from __future__ import annotations

import subprocess

from ftc import __version__
from ftc.targets.base import Job, Rendered, run_folder_files
from ftc.targets.launcher import NODE_VARIABLES, launch_command, rendezvous_for, visible_devices
from ftc.targets.render import render


class LocalTarget:
    name = "local"

    def render(self, job: Job) -> Rendered:
        script = render(
            "local_run.sh.j2",
            version=__version__,
            spec_path=job.spec_path,
            run_dir=job.run_dir,
            launch_command=launch_command(job, rendezvous_for(job)),
            visible_devices=visible_devices(job) if job.plan.world_size.value > 1 else None,
            # Several nodes: run.sh is started on each, with these exported there (node 0 at MASTER_ADDR).
            node_variables=NODE_VARIABLES if job.plan.hardware.nodes > 1 else (),
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
