"""`ftc launch`: plan → run folder → target. The same path with and without --dry-run, minus the start."""

from __future__ import annotations

import shlex

from ftc.cli.launch_data import check_and_prepare
from ftc.cli.output import console
from ftc.cli.show import show_run_folder
from ftc.compiler.plan import Plan
from ftc.spec.loader import LoadedSpec
from ftc.targets import get_target, target_record
from ftc.targets.prepare import make_job, write_job


def launch_spec(
    loaded: LoadedSpec,
    plan: Plan,
    target_name: str,
    dry_run: bool,
    overwrite: bool,
    resume: bool = False,
    smoke_steps: int = 0,
) -> int:
    target = get_target(target_name, smoke_steps=smoke_steps)
    job = make_job(loaded, plan)
    # Every record is read before the run folder exists: a bad one the runtime found would cost an --overwrite.
    check_and_prepare(job.spec, prepare=target_record(target_name).prepares_data and not dry_run)
    if resume:
        from ftc.targets.continuing import continue_job

        rendered = continue_job(target, job)
    else:
        rendered = write_job(target, job, overwrite=overwrite, dry_run=dry_run)
    show_run_folder(job, rendered, ran=not dry_run)
    if dry_run:
        return 0
    console().print(f"[bold]starting[/bold] {shlex.join(rendered.command)}")
    code = target.start(job, rendered)
    if code != 0:
        console().print(f"[red]the run exited with status {code}[/red]; its folder: {job.run_dir}")
    return code
