"""What a finished run shows: loss.png and a few lines on the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """The values as a row of block characters, low to high; long series are sampled down to `width`."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_BARS[round((value - low) / span * (len(_BARS) - 1))] for value in values)


def draw_loss_curve(log: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a training node
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
    axes.plot([entry["step"] for entry in log], [entry["loss"] for entry in log], marker=".", linewidth=1.5)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def summary_lines(metrics: dict[str, Any], trained: Path, loss_plot: Path) -> list[str]:
    losses = [entry["loss"] for entry in metrics["log"]]
    lines = []
    if losses:
        lines.append(f"loss {losses[0]:.3f} → {losses[-1]:.3f}  {sparkline(losses)}")
    timing = [f"trained in {metrics['train_runtime_s']:.1f} s"] if metrics.get("train_runtime_s") is not None else []
    if metrics.get("startup_s") is not None:
        timing.append(f"startup {metrics['startup_s']:.1f} s (process start → first step)")
    if timing:
        lines.append(", ".join(timing))
    kind = "adapter" if trained.name == "adapter" else "model"
    lines.append(f"{kind}: {trained}")
    lines.append(f"loss curve: {loss_plot}")
    return lines
