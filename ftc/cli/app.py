"""The typer app: thin commands that load, compile, render and report. Work lives in the packages."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ftc.errors import FtcError

app = typer.Typer(
    name="ftc",
    help="Validate, plan and launch fine-tuning jobs from one TOML spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class TextOrJson(StrEnum):
    text = "text"
    json = "json"


class TableOrJson(StrEnum):
    table = "table"
    json = "json"


def _print_version(show: bool) -> None:
    if show:
        from ftc import __version__

        print(f"ftc {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Validate, plan and launch fine-tuning jobs from one TOML spec."""


SpecArg = Annotated[Path, typer.Argument(help="The job spec (TOML).", show_default=False)]
HardwareOpt = Annotated[
    str, typer.Option("--hardware", "-H", help="Hardware to plan for, e.g. cpu or 8xH100-80GB; auto detects it.")
]
NodesOpt = Annotated[int, typer.Option("--nodes", min=1, help="Number of nodes.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a key, typed by the schema: --set train.learning_rate=2e-4 (repeatable)."
    ),
]


@app.command()
def validate(
    specs: Annotated[list[str], typer.Argument(help="Spec files or globs.", show_default=False)],
    output_format: Annotated[TextOrJson, typer.Option("--format", "-f", help="Report format.")] = TextOrJson.text,
    overrides: SetOpt = None,
) -> None:
    """Check specs and report every problem in each, with file, line, key path and a hint."""
    from ftc.cli.validate import validate_files

    raise typer.Exit(validate_files(specs, output_format.value, overrides or ()))


@app.command()
def plan(
    spec: SpecArg,
    hardware: HardwareOpt = "auto",
    nodes: NodesOpt = 1,
    output_format: Annotated[TableOrJson, typer.Option("--format", "-f", help="Output format.")] = TableOrJson.table,
    overrides: SetOpt = None,
) -> None:
    """Compile a spec into a plan for concrete hardware; every choice says why."""
    from ftc.cli.show import show_plan

    loaded, resolved_plan = _load_and_plan(spec, hardware, nodes, overrides)
    show_plan(loaded, resolved_plan, output_format.value)
    if not resolved_plan.fits:
        raise typer.Exit(1)


@app.command()
def launch(
    spec: SpecArg,
    target: Annotated[str, typer.Option("--target", "-t", help="Where to run: local, slurm or docker.")] = "local",
    hardware: HardwareOpt = "auto",
    nodes: NodesOpt = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the run folder and show the command; run nothing.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run folder from its last checkpoint (same data, schedule).")
    ] = False,
    smoke_steps: Annotated[
        int, typer.Option("--smoke-steps", min=0, help="Slurm: run N steps on one node first; the job waits on it.")
    ] = 0,
    overrides: SetOpt = None,
    locked: Annotated[
        bool, typer.Option("--locked", help="Refuse to run if anything differs from SPEC.lock (see `ftc lock`).")
    ] = False,
) -> None:
    """Write the run folder for a target and start the runtime there."""
    from ftc.cli.launching import launch_spec

    loaded, resolved_plan = _load_and_plan(spec, hardware, nodes, overrides)
    if locked:
        from ftc.cli.locking import require_locked

        require_locked(loaded, resolved_plan)
    raise typer.Exit(
        launch_spec(
            loaded, resolved_plan, target, dry_run=dry_run, overwrite=overwrite, resume=resume, smoke_steps=smoke_steps
        )
    )


@app.command()
def quickstart(
    folder: Annotated[Path, typer.Argument(help="Where to build the tiny model, data and spec.")] = Path(
        "ftc-quickstart"
    ),
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps to train.")] = 60,
) -> None:
    """Build a tiny model, tokenizer and dataset offline, and train a LoRA on the CPU."""
    from ftc.cli.launching import launch_spec
    from ftc.quickstart import write_quickstart

    spec_path = write_quickstart(folder, steps=steps)
    loaded, resolved_plan = _load_and_plan(spec_path, "cpu", 1)
    raise typer.Exit(launch_spec(loaded, resolved_plan, "local", dry_run=False, overwrite=True))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (holds metrics.json).", show_default=False)],
) -> None:
    """Summarise a run from its metrics.json and (re)write its curves as PNGs beside it."""
    from ftc.cli.report import report_run

    raise typer.Exit(report_run(run_dir))


RunDirArg = Annotated[Path, typer.Argument(help="A run folder written by ftc launch.", show_default=False)]


@app.command()
def status(
    run_dir: RunDirArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of a line.")] = False,
) -> None:
    """Show the state of the Slurm job a run folder was submitted as."""
    from ftc.cli.jobs import show_status

    raise typer.Exit(show_status(run_dir, as_json))


@app.command()
def cancel(run_dir: RunDirArg) -> None:
    """Cancel the Slurm job (and its smoke job) a run folder was submitted as."""
    from ftc.cli.jobs import cancel as cancel_run

    raise typer.Exit(cancel_run(run_dir))


@app.command()
def logs(
    run_dir: RunDirArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print the log of the Slurm job a run folder was submitted as."""
    from ftc.cli.jobs import follow_logs

    raise typer.Exit(follow_logs(run_dir, follow))


def _load_and_plan(spec: Path, hardware: str, nodes: int, overrides: list[str] | None = None):
    from ftc.compiler import compile_plan
    from ftc.model_lookup import architecture_for
    from ftc.spec import load_spec

    loaded = load_spec(spec, overrides or ())
    ref = _hardware(hardware, nodes)
    return loaded, compile_plan(loaded.spec, ref, architecture_for(loaded.spec, loaded.base_dir))


def _hardware(hardware: str, nodes: int):
    if hardware == "auto":
        from ftc.detect import detect_hardware

        return detect_hardware(nodes).hardware
    from ftc.compiler import parse_hardware

    return parse_hardware(hardware, nodes)


@app.command()
def lock(
    spec: SpecArg,
    hardware: HardwareOpt = "auto",
    nodes: NodesOpt = 1,
    overrides: SetOpt = None,
) -> None:
    """Write SPEC.lock: the resolved spec, plan, hardware, library versions, input hashes and template."""
    from ftc.cli.locking import write_spec_lock

    loaded, resolved_plan = _load_and_plan(spec, hardware, nodes, overrides)
    write_spec_lock(loaded, resolved_plan)


@app.command()
def verify(
    spec: SpecArg,
    hardware: Annotated[
        str | None, typer.Option("--hardware", "-H", help="Hardware to check for; the locked hardware if unset.")
    ] = None,
    nodes: Annotated[
        int | None, typer.Option("--nodes", min=1, help="Number of nodes; the locked number if unset.")
    ] = None,
    overrides: SetOpt = None,
) -> None:
    """Recompute SPEC.lock and report every difference; exit 1 on drift."""
    from ftc.cli.locking import locked_hardware, verify_lock

    if hardware is None or nodes is None:
        locked = locked_hardware(spec)
        hardware, nodes = hardware or locked[0], nodes or locked[1]
    loaded, resolved_plan = _load_and_plan(spec, hardware, nodes, overrides)
    raise typer.Exit(verify_lock(loaded, resolved_plan))


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the schema to this file instead of printing it.")
    ] = None,
) -> None:
    """Print the JSON Schema of the spec language, for editors (taplo / Even Better TOML: `#:schema FILE`)."""
    from ftc.cli.docs import write_schema

    write_schema(output)


@app.command()
def explain(key: Annotated[str, typer.Argument(help="A key path, e.g. train.learning_rate, or a section.")]) -> None:
    """Print a key's description, type, default and range (or a section's keys)."""
    from ftc.cli.docs import explain_key

    explain_key(key)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="The spec file to write.")] = Path("job.toml"),
    stage: Annotated[str, typer.Option("--stage", help="The stage: pt, sft, rm, ppo, grpo, dpo, kto, orpo.")] = "sft",
    method: Annotated[str, typer.Option("--method", help="Which parameters train: full, freeze, lora, qlora.")] = (
        "lora"
    ),
    model: Annotated[str, typer.Option("--model", help="Hub id or local folder of the base model.")] = (
        "meta-llama/Llama-3.1-8B"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a commented starter spec for a stage and method, every key shown with its default."""
    from ftc.cli.docs import write_starter

    write_starter(path, stage, method, model, force)


RunDirArg = Annotated[Path, typer.Argument(help="A run folder written by `ftc launch`.", show_default=False)]
CheckpointOpt = Annotated[
    str | None, typer.Option("--checkpoint", help="Use a checkpoint (e.g. checkpoint-20) instead of the result.")
]


@app.command()
def export(
    run_dir: RunDirArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write; RUN_DIR/merged if unset.")
    ] = None,
    checkpoint: CheckpointOpt = None,
    dtype: Annotated[str, typer.Option("--dtype", help="auto (as the base was saved), fp32, bf16 or fp16.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
) -> None:
    """Merge a LoRA/QLoRA adapter into its base (or re-save a full model) as one safetensors model folder."""
    from ftc.cli.trained import export_run

    if dtype not in ("auto", "fp32", "bf16", "fp16"):
        raise FtcError(f"unknown dtype '{dtype}'", "use auto, fp32, bf16 or fp16")
    export_run(run_dir, output, checkpoint, dtype, overwrite)


@app.command()
def chat(
    run_dir: RunDirArg,
    checkpoint: CheckpointOpt = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest reply, in tokens.")] = 128,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0: greedy; above: sampling.")] = 0.0,
) -> None:
    """Talk to the trained model with its chat template, offline (the CPU is enough)."""
    from ftc.cli.trained import chat_with_run

    chat_with_run(run_dir, checkpoint, max_new_tokens, temperature)


def run() -> None:
    from ftc.cli.output import print_error

    try:
        app()
    except FtcError as error:
        print_error(error)
        sys.exit(1)
