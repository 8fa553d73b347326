"""Showing plans and run folders to people (rich) and to programs (JSON)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ftc.cli.output import console

if TYPE_CHECKING:
    from ftc.compiler.plan import Plan
    from ftc.spec.loader import LoadedSpec
    from ftc.targets.base import Job, Rendered

_LABELS = {
    "backend": "device backend",
    "precision": "precision",
    "strategy": "strategy",
    "world_size": "data-parallel world",
    "micro_batch_size": "micro-batch",
    "gradient_accumulation_steps": "accumulation steps",
    "gradient_checkpointing": "gradient checkpointing",
    "quantization_bits": "quantization bits",
    "quantization_backend": "quantization backend",
    "quantization_group_size": "quantization group",
    "offload": "offload",
    "attention": "attention kernel",
    "kernels": "speed kernels",
}


def show_plan(loaded: LoadedSpec, plan: Plan, output_format: str) -> None:
    if output_format == "json":
        print(json.dumps({"spec": str(loaded.path), **plan.to_dict()}, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    spec = loaded.spec
    table = Table(
        title=f"Plan for {loaded.path} on {plan.hardware.label()}",
        caption=f"{spec.train.stage} · {spec.train.method} · {spec.model.name_or_path}",
        title_justify="left",
    )
    table.add_column("setting", style="bold")
    table.add_column("value", style="cyan")
    table.add_column("why")
    for name, decision in plan.decisions().items():
        table.add_row(_LABELS.get(name, name), _shown(decision.value), decision.reason)
    out = console()
    out.print(table)
    if plan.memory is not None:
        out.print(memory_chart(plan))
    if plan.time is not None:
        out.print(time_line(plan))
    if plan.limits and any(plan.limits.values()):
        out.print(limits_line(plan))
    if not plan.fits:
        out.print("[bold red]this run does not fit on this hardware[/bold red]")
    for note in plan.notes:
        out.print(f"{'→' if not plan.fits else 'note:'} {note}")


BAR_WIDTH = 40
_TERM_COLOURS = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta", "white")


def memory_chart(plan: Plan):
    """Each memory term as a bar on one scale, up to the device's capacity (or the total on the CPU)."""
    from rich.table import Table

    memory = plan.memory
    scale = memory.capacity_gib or memory.reserved_gib or 1.0
    where = f"of {memory.capacity_gib:.1f} GiB per device" if memory.capacity_gib else "of host memory"
    chart = Table(title=f"memory per device ({where})", title_justify="left", box=None, show_header=False)
    chart.add_column("term")
    chart.add_column("bar")
    chart.add_column("size", justify="right")
    shown = [(name, gib) for name, gib in memory.terms.items() if gib > 0]
    for (name, gib), colour in zip(shown, _TERM_COLOURS * 2, strict=False):
        width = max(1, round(gib / scale * BAR_WIDTH))
        chart.add_row(name, f"[{colour}]{'█' * width}[/{colour}]", _size(gib))
    filled = min(BAR_WIDTH, round(memory.reserved_gib / scale * BAR_WIDTH))
    colour = "green" if plan.fits else "red"
    bar = f"[{colour}]{'█' * filled}[/{colour}]{'░' * (BAR_WIDTH - filled)}"
    chart.add_row("[bold]reserved peak[/bold]", bar, f"[bold]{_size(memory.reserved_gib)}[/bold]")
    chart.add_row("allocated peak", "", _size(memory.allocated_gib))
    if memory.host_gib:
        chart.add_row("host RAM", "", _size(memory.host_gib))
    return chart


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"


def time_line(plan: Plan) -> str:
    time = plan.time
    length = f", {time.hours:.2f} h, {time.gpu_hours:.1f} GPU-hours" if time.hours is not None else ""
    return f"time: ≈ {time.tokens_per_second:,.0f} tokens/s{length} (at {time.utilisation:.0%} of peak FLOPs)"


def limits_line(plan: Plan) -> str:
    """Each limit under the plan's checkpointing, then under the other choice in brackets."""
    other = "without" if plan.gradient_checkpointing.value else "with"

    def limit(key: str, where: str) -> str:
        own, alternative = plan.limits.get(key), plan.limits.get(f"{key}_{other}_checkpointing")
        shown = f"{own:,}" if isinstance(own, int) else str(own)
        if alternative is None:  # a plan read back from an older plan.json holds only its own limits
            return f"{shown} {where}"
        return f"{shown} {where} ({f'{alternative:,}' if alternative else 'none'} {other} gradient checkpointing)"

    return (
        f"limits: micro-batch up to {limit('max_micro_batch_size', 'at this cutoff_len')}; "
        f"cutoff_len up to {limit('max_cutoff_len', 'at micro-batch 1')}"
    )


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def show_run_folder(job: Job, rendered: Rendered, ran: bool) -> None:
    out = console()
    out.print(f"[bold]run folder[/bold] {job.run_dir}")
    for name, content in sorted(rendered.files.items()):
        out.print(f"  {name:<12} {len(content.encode()):>7,} bytes")
    if not ran:
        from rich.syntax import Syntax

        out.print(f"[bold]would run[/bold] {' '.join(rendered.command)}")
        # What the target would run: its scripts (and a Dockerfile), and the DeepSpeed/FSDP config generated
        # from the plan, shown in full.
        for name in sorted(rendered.files):
            if name in rendered.executable or name.endswith("Dockerfile") or name in GENERATED_CONFIGS:
                lexer = "docker" if name.endswith("Dockerfile") else "json" if name.endswith(".json") else "bash"
                out.print(f"[bold]{name}[/bold]")
                # Wrapped, not cropped: the launch lines are longer than a terminal is wide.
                out.print(
                    Syntax(rendered.files[name], lexer, theme="ansi_dark", background_color="default", word_wrap=True)
                )


GENERATED_CONFIGS = ("deepspeed.json", "fsdp.json")
