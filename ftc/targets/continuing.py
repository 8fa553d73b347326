"""`ftc launch --resume`: start an existing run folder again, keeping its checkpoints.

The runtime resumes from the newest checkpoint by itself; this side refuses early, with the spec's
key paths, a resume whose data or schedule no longer match the run, and refreshes the scripts.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftc.compiler.plan import Plan
from ftc.errors import FtcError
from ftc.fs import atomic_write_text
from ftc.runs.checkpoints import latest_checkpoint
from ftc.runs.fingerprint import schedule_of
from ftc.spec import parse_spec
from ftc.targets.base import Job, Rendered, Target

_START_OVER = "launch without --resume and with --overwrite to start over, or set output.dir to a new folder"


def continue_job(target: Target, job: Job) -> Rendered:
    run_dir = job.run_dir
    if not (run_dir / "spec.toml").is_file():
        raise FtcError(f"--resume: {run_dir} holds no run to resume", "launch without --resume to start it")
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise FtcError(f"--resume: {run_dir} has no complete checkpoint yet", _START_OVER)
    changes = changes_since(run_dir, job)
    if changes:
        raise FtcError(f"cannot resume {run_dir} from {checkpoint.name}: " + "; ".join(changes), _START_OVER)
    rendered = target.render(job)
    for name, text in rendered.files.items():
        path = run_dir / name
        atomic_write_text(path, text)
        if name in rendered.executable:
            path.chmod(0o755)
    return rendered


def changes_since(run_dir: Path, job: Job) -> list[str]:
    """What differs, by key path, between the run folder's spec and plan and the job's."""
    before_spec = parse_spec((run_dir / "spec.toml").read_text(encoding="utf-8"), str(run_dir / "spec.toml"))
    before_plan = Plan.from_dict(json.loads((run_dir / "plan.json").read_text(encoding="utf-8")))
    before, now = schedule_of(before_spec, before_plan), schedule_of(job.spec, job.plan)
    changes = [f"{key} {before[key]!r} → {now[key]!r}" for key in now if before.get(key) != now[key]]
    old_data, new_data = before_spec.data.model_dump(), job.spec.data.model_dump()
    changes += [f"data.{key} changed" for key in new_data if old_data.get(key) != new_data[key] and key != "cutoff_len"]
    if before_spec.model.name_or_path != job.spec.model.name_or_path:
        changes.append(f"model.name_or_path {before_spec.model.name_or_path!r} → {job.spec.model.name_or_path!r}")
    added_before, added_now = before_spec.llama_pro.added_layers, job.spec.llama_pro.added_layers
    if added_before != added_now:  # the checkpoints hold the blocks of the other expansion
        changes.append(f"llama_pro.added_layers {added_before!r} → {added_now!r}")
    return changes
