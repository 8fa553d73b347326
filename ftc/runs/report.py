"""What a finished run shows: its curves as PNGs beside metrics.json and a few lines on the terminal.

Reads only metrics.json's plain values (no torch), so `ftc report` can redraw a run anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftc.runs.metrics import SERIES, series_values
from ftc.runs.peak_memory import memory_line

_BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Plot:
    file: str  # written into the run folder
    series: tuple[str, ...]  # log keys drawn, one line each
    ylabel: str


# loss.png for every stage; the others only where the stage logs their series.
PLOTS: tuple[Plot, ...] = (
    Plot("loss.png", ("loss",), "training loss"),
    Plot("rewards.png", ("reward_chosen", "reward_rejected"), "reward"),
    Plot("margin.png", ("reward_margin",), SERIES["reward_margin"].label),
    Plot("accuracy.png", ("reward_accuracy",), SERIES["reward_accuracy"].label),
    Plot("reward.png", ("reward",), SERIES["reward"].label),
    Plot("kl.png", ("kl",), SERIES["kl"].label),
    Plot("ppo_losses.png", ("policy_loss", "value_loss"), "loss"),
    Plot("entropy.png", ("entropy",), SERIES["entropy"].label),
    Plot("token_accuracy.png", ("token_accuracy",), SERIES["token_accuracy"].label),
)


def sparkline(values: list[float], width: int = 40) -> str:
    """The values as a row of block characters, low to high; long series are sampled down to `width`."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_BARS[round((value - low) / span * (len(_BARS) - 1))] for value in values)


def plot_title(metrics: dict[str, Any], run_name: str) -> str:
    return f"{metrics['stage']} · {metrics['method']} · {run_name}"


def write_plots(metrics: dict[str, Any], folder: Path, title: str) -> list[Path]:
    """Every plot of PLOTS that has data, (re)written into `folder`; returns the files written."""
    written = []
    for plot in PLOTS:
        lines = {name: series_values(metrics, name) for name in plot.series}
        if plot.file == "loss.png" and metrics.get("eval_log"):
            lines["eval_loss"] = [(entry["step"], entry["eval_loss"]) for entry in metrics["eval_log"]]
        lines = {name: points for name, points in lines.items() if points}
        if lines:
            draw_curve(lines, folder / plot.file, plot.ylabel, title)
            written.append(folder / plot.file)
    return written


def draw_curve(lines: dict[str, list[tuple[int, float]]], path: Path, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a training node
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
    for name, points in lines.items():
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, marker=".", linewidth=1.5, label=_legend(name))
    if len(lines) > 1:
        axes.legend()
    axes.set_xlabel("optimizer step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def _legend(name: str) -> str:
    if name in SERIES:
        return SERIES[name].label.removeprefix("reward of the ")
    return {"loss": "training loss", "eval_loss": "evaluation loss"}.get(name, name)


def benchmark_lines(benchmarks: dict[str, Any]) -> list[str]:
    """One line per benchmark [eval] scored the result on (metrics.json's "benchmarks")."""
    return [
        f"{task} ({result['shots']}-shot, {result['split']}): accuracy {result['accuracy']:.3f} "
        f"({result['correct']}/{result['questions']} questions, {len(result['subjects'])} subjects)"
        for task, result in benchmarks.items()
    ]


def summary_lines(metrics: dict[str, Any], trained: Path | None, plots: list[Path]) -> list[str]:
    losses = [entry["loss"] for entry in metrics["log"]]
    lines = []
    if losses:
        lines.append(f"loss {losses[0]:.3f} → {losses[-1]:.3f}  {sparkline(losses)}")
    for series in SERIES.values():
        values = [value for _, value in series_values(metrics, series.name)]
        if values:
            lines.append(f"{series.label}: {values[0]:.3f} → {values[-1]:.3f}  {sparkline(values)}")
    if metrics.get("eval_log"):
        lines.append(f"evaluation loss (last): {metrics['eval_log'][-1]['eval_loss']:.3f}")
    lines += benchmark_lines(metrics.get("benchmarks") or {})
    timing = [f"trained in {metrics['train_runtime_s']:.1f} s"] if metrics.get("train_runtime_s") is not None else []
    if metrics.get("startup_s") is not None:
        timing.append(f"startup {metrics['startup_s']:.1f} s (process start → first step)")
    prepared = metrics.get("data_preparation")
    if prepared:
        timing.append(f"data {prepared['seconds']:.2f} s ({prepared['records']:,} records, cache {prepared['cache']})")
    if timing:
        lines.append(", ".join(timing))
    memory = memory_line(metrics.get("peak_memory") or {})
    if memory:
        lines.append(memory)
    if trained is not None:
        kind = "adapter" if trained.name == "adapter" else "model"
        lines.append(f"{kind}: {trained}")
    if plots:
        lines.append(f"curves: {', '.join(plot.name for plot in plots)} in {plots[0].parent}")
    return lines
