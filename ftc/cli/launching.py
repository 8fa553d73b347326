"""`ftc launch`: plan → run folder → target. The same path with and without --dry-run, minus the start."""

from __future__ import annotations

import shlex

from ftc.cli.output import console
from ftc.cli.show import show_run_folder
from ftc.compiler.plan import Plan
from ftc.spec.loader import LoadedSpec
from ftc.targets import get_target
from ftc.targets.prepare import make_job, write_job


def launch_spec(loaded: LoadedSpec, plan: Plan, target_name: str, dry_run: bool, overwrite: bool) -> int:
    target = get_target(target_name)
    job = make_job(loaded, plan)
    rendered = write_job(target, job, overwrite=overwrite)
    show_run_folder(job, rendered, ran=not dry_run)
    if dry_run:
        return 0
    console().print(f"[bold]starting[/bold] {shlex.join(rendered.command)}")
    code = target.start(job, rendered)
    if code != 0:
        console().print(f"[red]the run exited with status {code}[/red]; its folder: {job.run_dir}")
    return code
