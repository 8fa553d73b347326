"""Showing plans and run folders to people (rich) and to programs (JSON)."""

from __future__ import annotations

import json

from ftc.cli.output import console
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
    "quantization_bits": "quantization",
    "offload": "offload",
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
    console().print(table)
    for note in plan.notes:
        console().print(f"note: {note}")


def _shown(value: object) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def show_run_folder(job: Job, rendered: Rendered, ran: bool) -> None:
    out = console()
    out.print(f"[bold]run folder[/bold] {job.run_dir}")
    for name, content in sorted(rendered.files.items()):
        out.print(f"  {name:<12} {len(content.encode()):>7,} bytes")
    if not ran:
        from rich.syntax import Syntax

        out.print(f"[bold]would run[/bold] {' '.join(rendered.command)}")
        if "run.sh" in rendered.files:
            out.print(Syntax(rendered.files["run.sh"], "bash", theme="ansi_dark", background_color="default"))
