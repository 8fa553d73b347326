"""`ftc doctor`: this machine against what a run needs — the tested library versions, torch's build and
devices, DeepSpeed's ops, bitsandbytes' backend, the kernel packages (liger-kernel, flash-attn), Slurm and
docker, and whether images can be read for an image+text model — in one table or object.

A row is only a finding; what makes the exit status 1 is a row a planned run needs (the core training
stack always, and with --spec what that spec's plan and target need) that is not ok.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ftc.cli.doctor_probes import (
    MACHINE_PROBES,
    MISSING,
    OK,
    WARN,
    Probe,
    Row,
    library_row,
    others_row,
    quantization_row,
    unpinned_row,
)
from ftc.devices.backends import BACKENDS
from ftc.errors import FtcError
from ftc.install.extras import EXTRAS
from ftc.install.tested_versions import (
    CONSTRAINTS_FILE,
    Lookup,
    compare,
    installed_version,
    normalise,
    pinned,
    read_tested_set,
)
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import DEFAULT_BACKEND, QUANTIZERS
from ftc.targets import target_record

if TYPE_CHECKING:
    from ftc.compiler.plan import Plan
    from ftc.spec.models import Spec

# Every run imports these (ftc[train]); they are needed whatever the spec says.
CORE_STACK = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
# `ftc serve` (the serve extra); vLLM, CUDA only, is the server's choice where present, not a need.
SERVE_STACK = ("fastapi", "uvicorn")
# `ftc board` (the board extra): the same web stack, and tomlkit for writing the form's edits into a spec.
BOARD_STACK = (*SERVE_STACK, "tomlkit")
KEY_LIBRARIES = (
    *CORE_STACK,
    "deepspeed",
    "bitsandbytes",
    "galore-torch",
    "apollo-torch",
    "badam",
    "adam-mini",
    "submitit",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "pydantic",
    "jinja2",
    "rich",
    "typer",
    "pillow",
    *BOARD_STACK,
)
# ftc.install.extras decides which extras a plan needs; these are the rows each one stands for here.
EXTRA_ROWS = {
    "qlora": ("bitsandbytes", "bitsandbytes backend"),
    **{
        quantizer.extra: tuple(
            quantization_row(name) for name, other in QUANTIZERS.items() if other.extra == quantizer.extra
        )
        for quantizer in QUANTIZERS.values()
        if quantizer.extra != QUANTIZERS[DEFAULT_BACKEND].extra  # bitsandbytes' rows, just above
    },
    "distributed": ("deepspeed",),
    "vision": ("pillow", "image processors"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "liger": ("liger-kernel",),
    "flash": ("flash-attn",),
}
BACKEND_ROWS = {backend.name: (backend.doctor_row,) if backend.doctor_row else () for backend in BACKENDS.values()}
# Needed by some plans, pinned by no test: the monitors' servers are out of the tests' reach, and the kernel
# packages are CUDA-only (triton, nvcc), which the CPU tests cannot install. Found by metadata where no probe ran.
UNPINNED_LIBRARIES = ("wandb", "mlflow", "liger-kernel", "flash-attn")
STATUS_STYLES = {OK: "green", WARN: "yellow"}  # anything else (missing) is red


def needs(
    spec: Spec | None = None,
    plan: Plan | None = None,
    target: str = "local",
    serve: bool = False,
    board: bool = False,
) -> dict[str, str]:
    """Row → why a run (and with serve, `ftc serve`; with board, `ftc board`) needs it."""
    needed = dict.fromkeys(CORE_STACK, "every run")
    if serve:
        needed |= dict.fromkeys(SERVE_STACK, "ftc serve")
    if board:
        needed |= dict.fromkeys(BOARD_STACK, "ftc board")
    if spec is not None and plan is not None:
        for extra in EXTRAS:
            if extra.needed(spec, plan):
                needed |= dict.fromkeys(EXTRA_ROWS.get(extra.name, ()), f"the plan: {extra.name}")
        strategy, backend = str(plan.strategy.value), str(plan.backend.value)
        # On CPU processes ZeRO compiles its collective; with offload, its CPU Adam (see doctor_probes).
        if strategy.startswith("zero") and (backend == "cpu" or plan.offload.value != "none"):
            needed["deepspeed ops"] = f"the plan: {strategy} on the CPU"
        if spec.train.shift_attention:
            needed["attention interface"] = "train.shift_attention"
        needed |= dict.fromkeys(BACKEND_ROWS.get(backend, ()), f"the plan: {backend}")
        optimizer = OPTIMIZERS[spec.train.optimizer]
        if optimizer.extra == "optimizers":
            needed[optimizer.library] = f"train.optimizer = {optimizer.name!r}"
    needed |= dict.fromkeys(target_record(target).doctor_rows, f"--target {target}")
    return needed


@dataclass(frozen=True)
class Diagnosis:
    rows: tuple[Row, ...]

    @property
    def problems(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.needed_for and row.status != OK)

    def error(self) -> FtcError | None:
        if not self.problems:
            return None
        named = ", ".join(f"{row.what}: {_shown_found(row)}" for row in self.problems)
        return FtcError(f"this machine lacks what a run needs: {named}", "; ".join(_hints(self.problems)))

    def to_dict(self) -> dict:
        return {
            "ok": not self.problems,
            "constraints": constraints_path(),
            "rows": [asdict(row) for row in self.rows],
            "problems": [row.what for row in self.problems],
        }


def diagnose(
    needed: dict[str, str], installed: Lookup = installed_version, probes: Iterable[Probe] = MACHINE_PROBES
) -> Diagnosis:
    pins = read_tested_set()
    key = pinned(pins, KEY_LIBRARIES)
    key_names = {normalise(pin.name) for pin in key}
    rows = [library_row(found) for found in compare(key, installed)]
    rows.append(others_row(compare([pin for pin in pins if normalise(pin.name) not in key_names], installed)))
    for probe in probes:
        rows += probe(installed)
    shown = {normalise(row.what) for row in rows}
    for name in needed:
        if normalise(name) not in shown:  # a library no probe reports, or a probe that did not run
            rows.append(
                unpinned_row(name, installed) if name in UNPINNED_LIBRARIES else Row(name, "not checked", MISSING)
            )
    return Diagnosis(tuple(_with_need(row, needed) for row in rows))


def _with_need(row: Row, needed: dict[str, str]) -> Row:
    by_name = {normalise(name): why for name, why in needed.items()}
    return replace(row, needed_for=by_name.get(normalise(row.what)))


def constraints_path() -> str:
    """The tested set as a pip argument: constraints.txt from the repository root, else the installed file."""
    shipped = resources.files("ftc").joinpath(CONSTRAINTS_FILE)
    here = Path(CONSTRAINTS_FILE)
    if here.is_file() and isinstance(shipped, Path) and here.resolve() == shipped.resolve():
        return CONSTRAINTS_FILE
    return str(shipped)


def _hints(problems: tuple[Row, ...]) -> list[str]:
    versions = [row.what for row in problems if row.tested is not None]
    hints = [f"pip install -c {constraints_path()} {' '.join(versions)}"] if versions else []
    return hints + list(dict.fromkeys(row.hint for row in problems if row.tested is None and row.hint))


def _shown_found(row: Row) -> str:
    if row.tested is not None and row.status != OK:
        return f"{row.found} (tested {row.tested})"
    return row.found


def run_doctor(
    output_format: str,
    spec: Spec | None = None,
    plan: Plan | None = None,
    target: str = "local",
    installed: Lookup = installed_version,
    probes: Iterable[Probe] = MACHINE_PROBES,
    serve: bool = False,
    board: bool = False,
) -> int:
    diagnosis = diagnose(needs(spec, plan, target, serve, board), installed, probes)
    if output_format == "json":
        print(json.dumps(diagnosis.to_dict(), indent=2, ensure_ascii=False))
    else:
        show_table(diagnosis)
    error = diagnosis.error()
    if error is not None:
        raise error
    return 0


def show_table(diagnosis: Diagnosis) -> None:
    from rich.table import Table

    from ftc.cli.output import console

    table = Table(title=f"ftc doctor · tested set: {constraints_path()}", title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("found")
    table.add_column("status")
    table.add_column("needed for")
    for row in diagnosis.rows:
        style = STATUS_STYLES.get(row.status, "red")
        table.add_row(row.what, _shown_found(row), f"[{style}]{row.status}[/{style}]", row.needed_for or "")
    console().print(table)
