"""`python -m ftc.runtime RUN_DIR`: train the run a target wrote into RUN_DIR.

Exit 0 on success, 2 on a user error (printed as `error: ... (hint: ...)`, no traceback).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

# Imported first of ours: without /proc, startup counts from here.
from ftc.runtime.distributed import clock  # noqa: F401

# isort: split
from ftc.errors import RuntimeUserError
from ftc.install.tested_versions import untested_warning
from ftc.runs.folder import RunFolder, load_run_folder
from ftc.runs.stopping import EXIT_STOPPED
from ftc.runtime.distributed.backend_check import check_backend
from ftc.runtime.distributed.process_group import (
    leave_process_group,
    preflight,
    rank,
    seed_all,
    show_preflight,
)
from ftc.runtime.distributed.startup import prepare_fresh_process
from ftc.stages import STAGES

USAGE = "usage: python -m ftc.runtime RUN_DIR"


def header(folder: RunFolder) -> str:
    spec, plan = folder.spec, folder.plan
    micro, accumulation = plan.micro_batch_size.value, plan.gradient_accumulation_steps.value
    return (
        f"ftc runtime · {spec.train.stage} · {spec.train.method} · {os.path.basename(spec.model.name_or_path)} · "
        f"{plan.backend.value} {plan.precision.value} · micro {micro} × accum {accumulation} × world "
        f"{plan.world_size.value} · {folder.path}"
    )


def run(run_dir: str, fresh_process: bool = False) -> None:
    folder = load_run_folder(run_dir)
    stage = STAGES[folder.spec.train.stage]  # the spec's stages all run: loading the spec checked the name
    # Checked before the heavy imports, so a plain mistake costs no time.
    check_backend(folder.plan)  # a run planned for an accelerator never falls back to the CPU unseen
    if fresh_process:
        prepare_fresh_process(folder.spec)
    # Every rank reports in before anything heavy loads; a missing one is named instead of hanging.
    reports = preflight(folder.plan, folder.spec.launch.collective_timeout_s)
    if rank() == 0:
        print(header(folder), flush=True)
        untested = untested_warning()  # one line from package metadata; `ftc doctor` has the details
        if untested:
            print(untested, file=sys.stderr, flush=True)
    show_preflight(reports)
    seed_all(folder.spec.train.seed)
    # We tokenize ourselves; the trainer's few passes over the data need no progress bars of their own.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # Raised by the libraries' own calls to each other; nothing a user could change in the spec.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # qlora 8-bit: said on every forward; the fp16 cast is how LLM.int8 works, not something to fix.
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    try:
        importlib.import_module(stage.module).run(folder)
    except SystemExit as stop:  # stopped by a signal after its checkpoint: every rank leaves together
        if fresh_process and stop.code == EXIT_STOPPED:
            leave_process_group()
        raise
    if fresh_process:  # a process of its own: nothing after this uses the group
        leave_process_group()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        run(argv[0], fresh_process=True)
    except RuntimeUserError as error:
        print(f"error: {error.message} (hint: {error.hint})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
