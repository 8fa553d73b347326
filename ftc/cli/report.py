"""`ftc report RUN_DIR`: a finished (or running) run's summary, and its curves redrawn from metrics.json.

Reads metrics.json only, so it works anywhere the run folder is copied to, without torch.
"""

from __future__ import annotations

from pathlib import Path

from ftc.errors import FtcError

TRAINED_FOLDERS = ("adapter", "model")  # what a stage saves, by method


def report_run(run_dir: Path) -> int:
    from ftc.runs.metrics import read_metrics
    from ftc.runs.report import plot_title, summary_lines, write_plots

    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise FtcError(
            f"{metrics_file} not found",
            "RUN_DIR must be a run folder whose training has started (ftc launch writes metrics.json as it trains)",
        )
    try:
        metrics = read_metrics(metrics_file)
    except ValueError as error:  # includes a JSON syntax error
        raise FtcError(f"{metrics_file} is not a metrics file: {error}", "it is written by the ftc runtime") from None
    trained = next((run_dir / name for name in TRAINED_FOLDERS if (run_dir / name).is_dir()), None)
    print(f"{metrics.get('stage', '?')} · {metrics.get('method', '?')} · {run_dir}")
    if not metrics["log"]:
        print("no step logged yet")
    plots = write_plots(metrics, run_dir, plot_title(metrics, run_dir.resolve().name))
    for line in summary_lines(metrics, trained, plots):
        print(line)
    return 0
