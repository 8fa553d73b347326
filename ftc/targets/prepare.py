"""From a loaded spec and a plan to a run folder on disk, for any target. The I/O edge of launching."""

from __future__ import annotations

import sys
from pathlib import Path

from ftc.compiler.plan import Plan
from ftc.errors import FtcError
from ftc.models.weight_files import MODEL_KEYS, check_weight_files
from ftc.spec.loader import LoadedSpec
from ftc.spec.models import Spec
from ftc.spec.resolve import input_paths, resolve_paths
from ftc.targets.base import Job, Rendered, Target
from ftc.targets.dry_run_folder import launch_record, reuse_dry_run
from ftc.targets.run_folder import write_run_folder


def make_job(loaded: LoadedSpec, plan: Plan) -> Job:
    if not plan.fits:
        raise FtcError(
            f"the run does not fit on {plan.hardware.label()}: {plan.notes[0]}", "; ".join(plan.notes[1:]) or None
        )
    spec = resolve_paths(loaded.spec, loaded.base_dir, is_local=Path.exists)
    _check_local_inputs(spec, loaded.base_dir)
    return Job(spec_path=loaded.path, spec=spec, plan=plan, run_dir=Path(spec.output.dir), python=sys.executable)


def _check_local_inputs(spec: Spec, base_dir: Path) -> None:
    """A missing local model or dataset, or a damaged weight file, is found here, before a run folder exists."""
    for key, path, _ in input_paths(spec):
        if Path(path).is_absolute() and not Path(path).exists():
            raise FtcError(
                f"{key}: {path} does not exist", f"relative paths are read from the spec's folder, {base_dir}"
            )
        if key in MODEL_KEYS and Path(path).is_dir():
            check_weight_files(Path(path), key)


def write_job(target: Target, job: Job, overwrite: bool, dry_run: bool = False) -> Rendered:
    rendered = target.render(job)
    if not overwrite and reuse_dry_run(job.run_dir, target.name, rendered, dry_run):
        return rendered  # a dry run of this same launch wrote the folder: it is launched as it is
    files = {**rendered.files, **launch_record(target.name, rendered, dry_run)}
    write_run_folder(job.run_dir, files, set(rendered.executable), overwrite=overwrite)
    return rendered
