"""The commands: thin functions that load, compile, render and report. Work lives in the packages.

Each command is registered with its arguments as small records, in argparse's vocabulary; `ftc.cli.typer_app`
turns only the invoked command's records into typer parameters, so a cold `ftc validate` or `ftc plan`
costs the spec and the compiler, not every command's options (typer builds a pydantic adapter per option).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ftc.methods import METHODS
from ftc.stages import STAGES


class Arg(NamedTuple):
    """One argument: its names (a positional has one without dashes) and argparse-style options."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


class Command(NamedTuple):
    name: str
    run: Callable[[argparse.Namespace], int | None]
    arguments: tuple[Arg, ...]

    @property
    def summary(self) -> str:
        return (self.run.__doc__ or "").strip()


COMMANDS: dict[str, Command] = {}


def command(*arguments: Arg, name: str | None = None) -> Callable:
    """Register a function as `ftc NAME`, NAME being its name (or `name`, for a Python keyword); its docstring
    is the help."""

    def register(run: Callable[[argparse.Namespace], int | None]) -> Callable:
        COMMANDS[name or run.__name__] = Command(name or run.__name__, run, arguments)
        return run

    return register


def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the least allowed, {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0")
    return value


SPEC = arg("spec", type=Path, help="The job spec (TOML).")


def _hardware_help() -> str:
    # Called only when a command that takes --hardware builds its parser: the registry imports the compiler.
    from ftc.compiler.hardware import described_names

    return (
        "Hardware to plan for, e.g. cpu or 8xH100-80GB; auto detects it. "
        f"Names in any case (aliases in brackets): {described_names()}."
    )


def _complete(name: str) -> Callable[[str], list[str]]:
    """A completion function of ftc.cli.completion, imported only when the shell asks."""

    def complete(incomplete: str) -> list[str]:
        from ftc.cli import completion

        return getattr(completion, name)(incomplete)

    complete.__name__ = name
    return complete


HARDWARE = arg("--hardware", "-H", default="auto", help=_hardware_help, complete=_complete("hardware"))
NODES = arg("--nodes", type=at_least(1), default=1, help="Number of nodes (default 1).")
OVERRIDES = arg(
    "--set",
    "-s",
    dest="overrides",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="Override a key, typed by the schema: --set train.learning_rate=2e-4 (repeatable).",
    complete=_complete("override"),
)
RUN_FOLDER = _complete("run_folder")
RUN_DIR = arg("run_dir", type=Path, help="A run folder written by `ftc launch`.", complete=RUN_FOLDER)
CHECKPOINT = arg("--checkpoint", help="Use a checkpoint (e.g. checkpoint-20) instead of the result.")


@command(
    arg("specs", nargs="+", metavar="spec", help="Spec files or globs."),
    arg(
        "--format",
        "-f",
        dest="output_format",
        choices=("text", "json", "github"),
        default="text",
        help="Report format; github: workflow commands that annotate a pull request's diff.",
    ),
    OVERRIDES,
    arg("--data", action="store_true", help="Also read every record of each spec's local datasets and check it."),
)
def validate(args: argparse.Namespace) -> int:
    """Check specs and report every problem in each, with file, line, key path and a hint."""
    from ftc.cli.validate import validate_files

    return validate_files(args.specs, args.output_format, args.overrides, data=args.data)


@command(
    SPEC,
    HARDWARE,
    NODES,
    arg("--format", "-f", dest="output_format", choices=("table", "json"), default="table", help="Output format."),
    OVERRIDES,
)
def plan(args: argparse.Namespace) -> int:
    """Compile a spec into a plan for concrete hardware; every choice says why."""
    from ftc.cli.show import show_plan

    loaded, resolved_plan = _load_and_plan(args.spec, args.hardware, args.nodes, args.overrides)
    show_plan(loaded, resolved_plan, args.output_format)
    return 0 if resolved_plan.fits else 1


@command(
    SPEC,
    arg(
        "--target",
        "-t",
        default="local",
        help="Where to run: local, slurm or docker (default local).",
        complete=_complete("target"),
    ),
    HARDWARE,
    NODES,
    arg("--dry-run", action="store_true", help="Write the run folder and show the command; run nothing."),
    arg("--overwrite", action="store_true", help="Replace an existing run folder."),
    arg("--resume", action="store_true", help="Continue the run folder from its last checkpoint."),
    arg(
        "--smoke-steps",
        type=at_least(0),
        default=0,
        help="Slurm: run N steps on one node first; the job waits on it.",
    ),
    OVERRIDES,
    arg("--locked", action="store_true", help="Refuse to run if anything differs from SPEC.lock (see `ftc lock`)."),
    arg("--allow-unpinned", action="store_true", help="With --locked: run even if a hub input has no locked commit."),
)
def launch(args: argparse.Namespace) -> int:
    """Write the run folder for a target and start the runtime there."""
    from ftc.cli.launching import launch_spec

    loaded, resolved_plan = _load_and_plan(args.spec, args.hardware, args.nodes, args.overrides)
    if args.locked:
        from ftc.cli.locking import require_locked

        require_locked(loaded, resolved_plan, allow_unpinned=args.allow_unpinned)
    return launch_spec(
        loaded,
        resolved_plan,
        args.target,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        resume=args.resume,
        smoke_steps=args.smoke_steps,
    )


@command(
    arg(
        "folder",
        nargs="?",
        type=Path,
        default=Path("ftc-quickstart"),
        help="Where to build the tiny model, data and spec (default ftc-quickstart).",
    ),
    arg("--steps", type=at_least(1), default=60, help="Optimizer steps to train (default 60)."),
    arg(
        "--vision",
        action="store_true",
        help="An image+text model instead: a tiny LLaVA (CLIP tower, projector, Llama) on pictures of shapes.",
    ),
)
def quickstart(args: argparse.Namespace) -> int:
    """Build a tiny model, tokenizer and dataset offline, and train a LoRA on the CPU."""
    from ftc.cli.launching import launch_spec
    from ftc.quickstart.workspace import write_quickstart

    spec_path = write_quickstart(args.folder, steps=args.steps, vision=args.vision)
    loaded, resolved_plan = _load_and_plan(spec_path, "cpu", 1)
    return launch_spec(loaded, resolved_plan, "local", dry_run=False, overwrite=True)


@command(SPEC, HARDWARE, NODES, OVERRIDES)
def lock(args: argparse.Namespace) -> None:
    """Write SPEC.lock: the resolved spec, plan, hardware, library versions, input hashes and template."""
    from ftc.cli.locking import write_spec_lock

    write_spec_lock(*_load_and_plan(args.spec, args.hardware, args.nodes, args.overrides))


@command(
    SPEC,
    arg("--hardware", "-H", help="Hardware to check for; the locked hardware if unset."),
    arg("--nodes", type=at_least(1), help="Number of nodes; the locked number if unset."),
    OVERRIDES,
)
def verify(args: argparse.Namespace) -> int:
    """Recompute SPEC.lock and report every difference; exit 1 on drift."""
    from ftc.cli.locking import locked_hardware, verify_lock

    hardware, nodes = args.hardware, args.nodes
    if hardware is None or nodes is None:
        locked = locked_hardware(args.spec)
        hardware, nodes = hardware or locked[0], nodes or locked[1]
    return verify_lock(*_load_and_plan(args.spec, hardware, nodes, args.overrides))


@command(arg("run_dir", type=Path, help="A run folder (holds metrics.json).", complete=RUN_FOLDER))
def report(args: argparse.Namespace) -> int:
    """Summarise a run from its metrics.json and (re)write its curves as PNGs beside it."""
    from ftc.cli.report import report_run

    return report_run(args.run_dir)


@command(RUN_DIR, arg("--json", dest="as_json", action="store_true", help="One JSON object instead of a line."))
def status(args: argparse.Namespace) -> int:
    """Show the state of the Slurm job a run folder was submitted as."""
    from ftc.cli.jobs import show_status

    return show_status(args.run_dir, args.as_json)


@command(RUN_DIR)
def cancel(args: argparse.Namespace) -> int:
    """Cancel the Slurm job (and its smoke job) a run folder was submitted as."""
    from ftc.cli.jobs import cancel as cancel_run

    return cancel_run(args.run_dir)


@command(RUN_DIR, arg("--follow", "-f", action="store_true", help="Keep printing until the job ends."))
def logs(args: argparse.Namespace) -> int:
    """Print the log of the Slurm job a run folder was submitted as."""
    from ftc.cli.jobs import follow_logs

    return follow_logs(args.run_dir, args.follow)


@command(arg("--output", "-o", type=Path, help="Write the schema to this file instead of printing it."))
def schema(args: argparse.Namespace) -> None:
    """Print the JSON Schema of the spec language, for editors (taplo / Even Better TOML: `#:schema FILE`)."""
    from ftc.cli.docs import write_schema

    write_schema(args.output)


@command(arg("key", help="A key path, e.g. train.learning_rate, or a section.", complete=_complete("key_path")))
def explain(args: argparse.Namespace) -> None:
    """Print a key's description, type, default and range (or a section's keys)."""
    from ftc.cli.docs import explain_key

    explain_key(args.key)


@command(
    arg("path", nargs="?", type=Path, default=Path("job.toml"), help="The spec file to write (default job.toml)."),
    arg("--stage", default="sft", help=f"The stage: {', '.join(STAGES)} (default sft)."),
    arg("--method", default="lora", help=f"Which parameters train: {', '.join(METHODS)} (default lora)."),
    arg(
        "--model",
        default=None,
        help="Hub id or local folder of the base model (default meta-llama/Llama-3.1-8B; with --vision "
        "Qwen/Qwen2-VL-2B-Instruct).",
    ),
    arg("--force", action="store_true", help="Replace an existing file."),
    arg(
        "--vision",
        action="store_true",
        help="An image+text model's starter: records with images, the model's chat template, [vision] set.",
    ),
)
def init(args: argparse.Namespace) -> None:
    """Write a commented starter spec for a stage and method, every key shown with its default."""
    from ftc.cli.docs import write_starter

    write_starter(args.path, args.stage, args.method, args.model, args.force, args.vision)


@command(
    arg("tool", choices=("llamafactory", "axolotl"), help="The tool the config is written for."),
    arg("config", type=Path, help="Its training config (YAML)."),
    arg("--output", "-o", type=Path, default=Path("job.toml"), help="The spec to write (default job.toml)."),
    arg("--dataset-info", type=Path, help="LLaMA-Factory's dataset_info.json (default: dataset_dir's, by the config)."),
    arg("--world-size", type=at_least(1), default=1, help="Processes the config ran on: the global batch counts them."),
    arg("--force", action="store_true", help="Replace an existing output file."),
    arg("--format", "-f", dest="output_format", choices=("text", "json"), default="text", help="Report format."),
    name="import",
)
def import_(args: argparse.Namespace) -> int:
    """Turn a LLaMA-Factory or Axolotl training config into an ftc spec; keys with no equivalent are listed."""
    from ftc.importers import write_import

    return write_import(
        args.tool, args.config, args.output, args.dataset_info, args.world_size, args.force, args.output_format
    )


@command(
    RUN_DIR,
    arg("--output", "-o", type=Path, help="Where to write; RUN_DIR/merged if unset."),
    CHECKPOINT,
    arg(
        "--dtype",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (as the base was saved), fp32, bf16 or fp16.",
    ),
    arg("--overwrite", action="store_true", help="Replace an existing output folder."),
)
def export(args: argparse.Namespace) -> None:
    """Merge a LoRA/QLoRA adapter into its base (or re-save a full model) as one safetensors model folder."""
    from ftc.cli.trained import export_run

    export_run(args.run_dir, args.output, args.checkpoint, args.dtype, args.overwrite)


@command(
    RUN_DIR,
    CHECKPOINT,
    arg("--max-new-tokens", type=at_least(1), default=128, help="Longest reply, in tokens (default 128)."),
    arg("--temperature", type=non_negative_float, default=0.0, help="0: greedy; above: sampling (default 0)."),
    arg(
        "--image",
        type=Path,
        default=None,
        help="An image for an image+text model, shown in the first user turn of each conversation.",
    ),
)
def chat(args: argparse.Namespace) -> None:
    """Talk to the trained model with its chat template, offline (the CPU is enough)."""
    from ftc.cli.trained import chat_with_run

    chat_with_run(args.run_dir, args.checkpoint, args.max_new_tokens, args.temperature, args.image)


@command(
    arg(
        "target",
        type=Path,
        help="A run folder written by `ftc launch`, or a model folder (e.g. an export).",
        complete=RUN_FOLDER,
    ),
    arg("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1); beyond loopback needs a key."),
    arg("--port", type=at_least(1), default=8000, help="Port (default 8000)."),
    arg(
        "--backend",
        choices=("auto", "transformers", "vllm"),
        default="auto",
        help="auto: vllm where CUDA and vllm are present, else transformers (default auto).",
    ),
    arg("--api-key-env", metavar="NAME", help="Require Bearer auth with the key held in this environment variable."),
    arg("--concurrency", type=at_least(1), default=1, help="Generations at once; the rest queue (default 1)."),
    arg("--model-name", help="The model id clients ask for (default: the folder's name)."),
    CHECKPOINT,
)
def serve(args: argparse.Namespace) -> None:
    """Serve a trained run behind an OpenAI-compatible API (/v1/models, /v1/chat/completions, streaming)."""
    from ftc.cli.trained import serve_run

    serve_run(args)


@command(
    arg("target", metavar="RUN_DIR|MODEL", type=Path, help="A run folder written by `ftc launch`, or a model folder."),
    arg("--task", help="Benchmark: mmlu, cmmlu or ceval (`ftc explain eval.tasks` shows their layouts)."),
    arg("--data", type=Path, help="The benchmark's folder, in its published layout (dev/, test/ or val/)."),
    arg("--shots", type=at_least(0), default=5, help="Solved dev questions before each question (default 5)."),
    arg(
        "--no-chat-template",
        dest="chat_template",
        action="store_false",
        help="Ask in the plain prompt of the benchmarks' own harnesses, not in the run's chat template.",
    ),
    arg("--predict", type=Path, metavar="FILE", help="Also generate for held-out records; BLEU-4 and ROUGE."),
    arg(
        "--predict-format",
        choices=("alpaca", "sharegpt", "messages"),
        default="alpaca",
        help="The ftc data format of --predict's file (default alpaca).",
    ),
    arg("--max-new-tokens", type=at_least(1), default=128, help="Longest generated reply (default 128)."),
    arg("--limit", type=at_least(1), help="At most this many questions per subject (and predict records)."),
    CHECKPOINT,
    arg("--format", "-f", dest="output_format", choices=("table", "json"), default="table", help="Output format."),
    arg("--output", "-o", type=Path, help="Also write the results as JSON here (predictions go beside it)."),
)
def eval(args: argparse.Namespace) -> None:  # noqa: A001 - the command's name
    """Score a run or model on MMLU, CMMLU or C-Eval from local files (lm-eval), or BLEU/ROUGE on --predict."""
    from ftc.cli.trained import eval_run

    eval_run(args)


@command(
    arg("--format", "-f", dest="output_format", choices=("table", "json"), default="table", help="Output format."),
    arg("--spec", type=Path, help="Also require what this spec's plan needs (qlora: bitsandbytes, zero*: DeepSpeed)."),
    HARDWARE,
    arg(
        "--target",
        "-t",
        default="local",
        help="Also require what launching there needs (slurm: sbatch; docker: its daemon).",
    ),
    arg("--serve", action="store_true", help="Also require what `ftc serve` needs (fastapi, uvicorn)."),
    arg("--board", action="store_true", help="Also require what `ftc board` needs (fastapi, uvicorn, tomlkit)."),
)
def doctor(args: argparse.Namespace) -> int:
    """Compare installed libraries with the tested set; check torch's build, devices, DeepSpeed, Slurm, docker."""
    from ftc.cli.doctor import run_doctor

    if args.spec is None:
        return run_doctor(args.output_format, target=args.target, serve=args.serve, board=args.board)
    loaded, resolved_plan = _load_and_plan(args.spec, args.hardware, 1)
    return run_doctor(args.output_format, loaded.spec, resolved_plan, args.target, serve=args.serve, board=args.board)


@command(
    arg("action", choices=("ls", "prune"), help="ls: list the entries; prune: remove unfinished (or old, or all)."),
    arg("--spec", type=Path, help="The cache this spec's runs use: its data.cache_dir, else the default."),
    arg(
        "--dir",
        dest="folder",
        type=Path,
        metavar="DIR",
        help="A cache root given directly. Default: $FTC_CACHE/prepared, else ftc/prepared beside the hub cache.",
    ),
    arg("--older-than", type=float, metavar="DAYS", help="prune: also remove entries no run used for DAYS days."),
    arg("--all", dest="everything", action="store_true", help="prune: remove every entry."),
    arg("--format", "-f", dest="output_format", choices=("text", "json"), help="ls: output format (default text)."),
)
def cache(args: argparse.Namespace) -> int:
    """List or prune the cache of prepared (tokenized) training data that runs reuse."""
    from ftc.cli.cache import run_cache

    return run_cache(args.action, args.spec, args.folder, args.older_than, args.everything, args.output_format)


@command(
    arg(
        "folder",
        nargs="?",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="The folder whose runs and specs the board shows; it writes nowhere else (default .).",
        complete=_complete("folder"),
    ),
    arg("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1); beyond loopback needs --auth-env."),
    arg("--port", type=at_least(1), default=7860, help="Port (default 7860)."),
    arg("--share", action="store_true", help="Bind every interface (0.0.0.0), for other machines; needs --auth-env."),
    arg(
        "--auth-env",
        metavar="NAME",
        help="Require a token, held in this environment variable: a Bearer header, or log in once with ?token=.",
    ),
)
def board(args: argparse.Namespace) -> None:
    """A web page to edit specs and see their plans live, launch them, and watch runs (curves, memory, logs)."""
    from ftc.board.server import run_board

    run_board(args.folder, "0.0.0.0" if args.share else args.host, args.port, args.auth_env)


def _load_and_plan(spec: Path, hardware: str, nodes: int, overrides: list[str] | None = None):
    from ftc.spec import load_spec

    loaded = load_spec(spec, overrides or ())
    return loaded, plan_for(loaded, hardware, nodes)


def plan_for(loaded, hardware: str, nodes: int):
    """The plan of a loaded spec on `hardware` (a registry name, or auto), as every command compiles it."""
    from ftc.compiler import compile_plan
    from ftc.models.lookup import adapter_for, architecture_for

    ref = _hardware(hardware, nodes)
    arch = architecture_for(loaded.spec, loaded.base_dir)
    return compile_plan(loaded.spec, ref, arch, adapter=adapter_for(loaded.spec, loaded.base_dir))


def _hardware(hardware: str, nodes: int):
    if hardware == "auto":
        from ftc.devices.detect import detect_hardware

        return detect_hardware(nodes).hardware
    from ftc.compiler import parse_hardware

    return parse_hardware(hardware, nodes)
