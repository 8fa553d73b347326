"""The run folders under the board's folder: what each ran, its state, its progress, and its page's contents.

A run folder is what `ftc launch` wrote (spec.toml + plan.json). Its state comes from the target's own record:
the local process (`ftc.targets.local`) or the Slurm job (`ftc.targets.slurm_jobs`); its progress from
metrics.json, which the runtime keeps current while it trains.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftc.board.paths import shown
from ftc.errors import FtcError, RuntimeUserError
from ftc.runs.checkpoints import checkpoint_folders
from ftc.runs.folder import RunFolder, load_run_folder
from ftc.runs.metrics import SERIES, read_metrics, series_values
from ftc.runs.peak_memory import memory_line
from ftc.runs.stopping import EXIT_STOPPED
from ftc.targets.dry_run_folder import LAUNCH_FILE
from ftc.targets.local import process_alive, read_local_record
from ftc.targets.slurm_jobs import RECORD_FILE as SLURM_RECORD
from ftc.targets.slurm_jobs import job_state, log_files, read_job_record

BOARD_FOLDER = ".ftc-board"  # the board's own files inside its folder: the logs of the runs it launched
MAX_DEPTH = 6  # run folders are found this deep under the board's folder
LOG_TAIL_BYTES = 16_384
# Slurm's job states as the board's: waiting, training, ended well, ended badly.
SLURM_STATES = {
    "PENDING": "queued",
    "CONFIGURING": "queued",
    "REQUEUED": "queued",
    "REQUEUE_HOLD": "queued",
    "SUSPENDED": "queued",
    "RUNNING": "running",
    "COMPLETING": "running",
    "RESIZING": "running",
    "COMPLETED": "done",
    "CANCELLED": "stopped",  # scancel, from `ftc cancel` or this board: asked for, not a failure
}


@dataclass(frozen=True)
class RunSummary:
    path: str  # relative to the board's folder: the run's id in the page and the API
    stage: str
    method: str
    model: str
    target: str
    state: str  # running, done, failed, queued, stopped, prepared (a dry run), unknown
    reason: str  # why the state is what it is, in a few words
    step: int | None
    steps: int | None
    last_loss: float | None
    elapsed_s: float | None
    remaining_s: float | None


def find_run_folders(root: Path) -> list[Path]:
    """Every run folder under `root`, not looking inside one (its checkpoints can be many) or hidden folders."""
    found = []
    base_depth = len(root.resolve().parts)
    for folder, children, files in os.walk(root.resolve()):
        here = Path(folder)
        if "plan.json" in files and "spec.toml" in files:
            found.append(here)
            children[:] = []
            continue
        children[:] = sorted(c for c in children if not c.startswith(".") and len(here.parts) - base_depth < MAX_DEPTH)
    return sorted(found)


def log_file(root: Path, run_dir: Path) -> Path:
    """Where the board writes the output of a launch it started for `run_dir`."""
    return root.resolve() / BOARD_FOLDER / "logs" / (shown(root, run_dir).replace("/", "__") + ".log")


def _metrics(run: RunFolder) -> dict[str, Any] | None:
    try:
        return read_metrics(run.metrics)
    except (OSError, ValueError):
        return None


def _launch_record(run_dir: Path) -> dict[str, Any]:
    try:
        record = json.loads((run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _total_steps(run: RunFolder) -> int | None:
    """train.max_steps, or what the trainer worked out from epochs (its state in the newest checkpoint)."""
    if run.spec.train.max_steps is not None:
        return run.spec.train.max_steps
    for _, folder in reversed(checkpoint_folders(run.checkpoints)):
        try:
            return int(json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))["max_steps"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def run_state(run: RunFolder) -> tuple[str, str, float | None, float | None]:
    """(state, reason, started, ended): from the Slurm job or the local process the target recorded."""
    trained = run.trained.is_dir()
    if (run.path / SLURM_RECORD).is_file():
        record = read_job_record(run.path)
        try:
            job = job_state(record.job_id)
        except FtcError as error:  # this machine has no Slurm client
            return "unknown", f"slurm job {record.job_id}: {error.message}", record.submitted_at, None
        state = SLURM_STATES.get(job.state, "done" if job.state == "UNKNOWN" and trained else "failed")
        return (
            state,
            f"slurm job {record.job_id}: {job.state}" + (f" ({job.reason})" if job.reason else ""),
            (record.submitted_at),
            None,
        )
    local = read_local_record(run.path)
    if local is None:
        if _launch_record(run.path).get("dry_run"):
            return "prepared", "a dry run: written, not started", None, None
        return (
            ("done", "its result is saved", None, None) if trained else ("unknown", "no process recorded", None, None)
        )
    if local.exit_code is None:
        if process_alive(local, run.path):
            return "running", f"process {local.pid}", local.started_at, None
        if trained:
            return "done", "its result is saved", local.started_at, None
        return "failed", f"process {local.pid} ended without an exit status", local.started_at, None
    if local.exit_code == 0:
        return "done", "exit status 0", local.started_at, local.ended_at
    if local.exit_code == EXIT_STOPPED:
        return "stopped", "stopped on request after a checkpoint", local.started_at, local.ended_at
    return "failed", f"exit status {local.exit_code}", local.started_at, local.ended_at


def summarise(root: Path, run: RunFolder, now: float | None = None) -> RunSummary:
    now = time.time() if now is None else now
    metrics = _metrics(run)
    state, reason, started, ended = run_state(run)
    log = metrics["log"] if metrics else []
    step = log[-1]["step"] if log else None
    steps = _total_steps(run)
    if started is None and (run.path / LAUNCH_FILE).is_file() and state != "prepared":
        started = (run.path / LAUNCH_FILE).stat().st_mtime
    if ended is None and state not in ("running", "queued") and run.metrics.is_file():
        ended = run.metrics.stat().st_mtime
    elapsed = None if started is None else max(0.0, (ended or now) - started)
    remaining = None
    if state == "running" and elapsed is not None and step and steps:
        remaining = elapsed / step * max(0, steps - step)
    return RunSummary(
        path=shown(root, run.path),
        stage=run.spec.train.stage,
        method=run.spec.train.method,
        model=run.spec.model.name_or_path,
        target=str(_launch_record(run.path).get("target", "slurm" if (run.path / SLURM_RECORD).is_file() else "local")),
        state=state,
        reason=reason,
        step=step,
        steps=steps,
        last_loss=log[-1]["loss"] if log else None,
        elapsed_s=elapsed,
        remaining_s=remaining,
    )


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every readable run folder's summary; one that cannot be read is listed with why."""
    rows = []
    for folder in find_run_folders(root):
        try:
            rows.append(asdict(summarise(root, load_run_folder(folder))))
        except (FtcError, RuntimeUserError) as error:
            rows.append({"path": shown(root, folder), "state": "unreadable", "reason": error.message})
    return rows


def run_details(root: Path, run_dir: Path) -> dict[str, Any]:
    """Everything the run's page shows: the summary, every logged series, memory planned and measured, the
    resolved spec and the end of its log."""
    run = load_run_folder(run_dir)
    metrics = _metrics(run) or {"log": [], "eval_log": []}
    names = ["loss", *(name for name in SERIES if any(name in entry for entry in metrics["log"]))]
    labels = {"loss": "loss", **{name: series.label for name, series in SERIES.items()}}
    plan = run.plan
    return {
        "summary": asdict(summarise(root, run)),
        "series": [{"name": name, "label": labels[name], "points": series_values(metrics, name)} for name in names],
        "eval": [[entry["step"], entry["eval_loss"]] for entry in metrics.get("eval_log", [])],
        "memory": plan.to_dict()["memory"],
        "fits": plan.fits,
        "hardware": plan.hardware.label(),
        "peak_memory": metrics.get("peak_memory"),
        "memory_line": memory_line(metrics["peak_memory"]) if metrics.get("peak_memory") else None,
        "spec": (run.path / "spec.toml").read_text(encoding="utf-8"),
        "log": _log_tail(root, run.path),
    }


def _log_tail(root: Path, run_dir: Path) -> str:
    candidates = [log_file(root, run_dir)]
    if (run_dir / SLURM_RECORD).is_file():
        candidates = log_files(run_dir, read_job_record(run_dir).job_id) + candidates
    for path in candidates:
        if path.is_file():
            with open(path, "rb") as handle:
                handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
                return handle.read().decode("utf-8", errors="replace")
    return ""


def cancel_run(run_dir: Path) -> str:
    """Stop the run: its Slurm jobs as `ftc cancel` does, or its local process, asked to checkpoint and stop."""
    if (run_dir / SLURM_RECORD).is_file():
        from ftc.cli.jobs import cancel

        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            cancel(run_dir)
        return said.getvalue().strip()
    local = read_local_record(run_dir)
    if local is None or local.exit_code is not None or not process_alive(local, run_dir):
        raise FtcError(f"{run_dir.name} is not running", "only a running local run or a Slurm job can be cancelled")
    os.kill(local.pid, signal.SIGTERM)  # the runtime saves a checkpoint on it and exits (ftc.runs.stopping)
    return f"asked process {local.pid} to stop (it saves a checkpoint first)"
