"""The local target: a run.sh that starts the runtime on this machine, as one process or one per device."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ftc import __version__
from ftc.fs import atomic_write_text
from ftc.targets.base import Job, Rendered, run_folder_files
from ftc.targets.launcher import NODE_VARIABLES, launch_command, rendezvous_for, visible_devices
from ftc.targets.render import render

# The process a local launch started, so that a board (or a person) can tell running from ended, and stop it.
RECORD_FILE = "local_job.json"


@dataclass(frozen=True)
class LocalJobRecord:
    pid: int  # run.sh, which execs the launcher: the runtime itself (or torchrun over it)
    started_at: float
    exit_code: int | None = None  # set when the process ended while `ftc launch` waited on it
    ended_at: float | None = None


def read_local_record(run_dir: Path) -> LocalJobRecord | None:
    try:
        return LocalJobRecord(**json.loads((run_dir / RECORD_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write_local_record(run_dir: Path, record: LocalJobRecord) -> None:
    atomic_write_text(run_dir / RECORD_FILE, json.dumps(asdict(record), indent=2) + "\n")


def process_alive(record: LocalJobRecord, run_dir: Path) -> bool:
    """The recorded process still runs, and is this run's (a reused pid works in another folder)."""
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(os.readlink(f"/proc/{record.pid}/cwd")) == run_dir.resolve()
    except OSError:  # no /proc (macOS): the pid is taken as the run's
        return True


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
        started = LocalJobRecord(pid=process.pid, started_at=time.time())
        _write_local_record(job.run_dir, started)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C; let it save and exit rather than orphaning it.
            code = process.wait()
        _write_local_record(job.run_dir, LocalJobRecord(started.pid, started.started_at, code, time.time()))
        return code
