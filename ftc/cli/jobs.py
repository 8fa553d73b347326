"""`ftc status`, `ftc cancel`, `ftc logs`: the Slurm job recorded in a run folder, without its id."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ftc.errors import FtcError
from ftc.targets.slurm_jobs import cancel_job, job_state, log_files, read_job_record


def show_status(run_dir: Path, as_json: bool) -> int:
    record = read_job_record(run_dir)
    state = job_state(record.job_id)
    step = last_logged_step(run_dir)
    if as_json:
        print(json.dumps({"job_id": record.job_id, "state": state.state, "reason": state.reason,
                          "restarts": state.restarts, "last_logged_step": step}))  # fmt: skip
        return 0
    reason = f" ({state.reason})" if state.reason else ""
    restarts = f", restarted {state.restarts}×" if state.restarts else ""
    progress = f"; last logged step {step}" if step is not None else ""
    print(f"slurm job {record.job_id}: {state.state}{reason}{restarts}{progress}")
    if record.smoke_job_id:
        smoke = job_state(record.smoke_job_id)
        print(f"smoke job {record.smoke_job_id}: {smoke.state}")
    return 0


def last_logged_step(run_dir: Path) -> int | None:
    try:
        log = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["log"]
    except (OSError, ValueError, KeyError):
        return None
    return log[-1]["step"] if log else None


def cancel(run_dir: Path) -> int:
    record = read_job_record(run_dir)
    for job_id in filter(None, (record.smoke_job_id, record.job_id)):
        if job_state(job_id).active:
            cancel_job(job_id)
            print(f"cancelled slurm job {job_id}")
        else:
            print(f"slurm job {job_id} is no longer active")
    return 0


def follow_logs(run_dir: Path, follow: bool, poll_s: float = 1.0) -> int:
    """Print the job's log; with `follow`, keep printing what is added until the job is over."""
    record = read_job_record(run_dir)
    log = run_dir / f"slurm-{record.job_id}.log"
    offset = 0
    while True:
        offset = _print_from(log, offset)
        if not follow:
            if not log_files(run_dir, record.job_id):
                raise FtcError(f"no log yet for slurm job {record.job_id}", "the job may still be pending")
            return 0
        if not job_state(record.job_id).active:
            _print_from(log, offset)
            return 0
        time.sleep(poll_s)


def _print_from(log: Path, offset: int) -> int:
    if not log.is_file():
        return offset
    with open(log, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    sys.stdout.write(data.decode("utf-8", errors="replace"))
    sys.stdout.flush()
    return offset + len(data)
