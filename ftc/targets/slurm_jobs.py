"""The Slurm job a run folder was submitted as: its record on disk, and what Slurm says about it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftc.errors import FtcError
from ftc.fs import atomic_write_text

RECORD_FILE = "slurm_job.json"
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED"}


@dataclass(frozen=True)
class SlurmJobRecord:
    job_id: str
    smoke_job_id: str | None = None
    submitted_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class JobState:
    state: str  # Slurm's JobState, or "UNKNOWN" once Slurm has forgotten the job
    reason: str = ""
    restarts: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def write_job_record(run_dir: Path, record: SlurmJobRecord) -> None:
    atomic_write_text(run_dir / RECORD_FILE, json.dumps(asdict(record), indent=2) + "\n")


def read_job_record(run_dir: Path) -> SlurmJobRecord:
    path = run_dir / RECORD_FILE
    if not path.is_file():
        raise FtcError(
            f"{run_dir} holds no Slurm job ({RECORD_FILE} is missing)",
            "status, cancel and logs follow runs launched with --target slurm",
        )
    return SlurmJobRecord(**json.loads(path.read_text(encoding="utf-8")))


def slurm_command(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FtcError(f"{name} not found: this machine is not a Slurm submit host", "run this on a login node")
    return path


def job_state(job_id: str) -> JobState:
    """From `scontrol show job`, which knows jobs until MinJobAge after they end; accounting is not needed."""
    result = subprocess.run(
        [slurm_command("scontrol"), "show", "job", "--oneliner", job_id], capture_output=True, text=True
    )
    if result.returncode != 0:
        return JobState("UNKNOWN", "Slurm no longer knows the job")
    fields = dict(part.split("=", 1) for part in result.stdout.split() if "=" in part)
    reason = fields.get("Reason", "None")
    return JobState(
        fields.get("JobState", "UNKNOWN"), "" if reason == "None" else reason, int(fields.get("Restarts", 0))
    )


def log_files(run_dir: Path, job_id: str) -> list[Path]:
    return sorted(run_dir.glob(f"slurm-{job_id}.log"))


def cancel_job(job_id: str) -> None:
    result = subprocess.run([slurm_command("scancel"), job_id], capture_output=True, text=True)
    if result.returncode != 0:
        raise FtcError(f"scancel {job_id} failed: {result.stderr.strip()}", "check the job id with squeue")
