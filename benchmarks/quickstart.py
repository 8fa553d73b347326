"""The quickstart end to end: wall time of `ftc quickstart`, and how the runtime spent its part.

`startup_s` is the runtime's own count from its process start to the first optimizer step (library
imports, tokenizer, data, model, trainer): the number to compare with other tools' start-up.
Prints a table and writes JSON (default benchmarks/results/quickstart.json).

    python benchmarks/quickstart.py [--runs 3] [--steps 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._environment import AS_INSTALLED  # noqa: E402
from benchmarks._report import write_report  # noqa: E402


def one_run(steps: int) -> dict:
    ftc = shutil.which("ftc")
    command = [ftc] if ftc else [sys.executable, "-m", "ftc"]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run(
            [*command, "quickstart", folder, "--steps", str(steps)], check=True, capture_output=True, env=AS_INSTALLED
        )
        wall = time.perf_counter() - start
        metrics = json.loads((Path(folder) / "runs" / "quickstart" / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "runtime_startup_s": metrics["startup_s"],
        "train_s": metrics["train_runtime_s"],
        "first_loss": metrics["first_loss"],
        "last_loss": metrics["last_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quickstart.json")
    args = parser.parse_args()

    runs = [one_run(args.steps) for _ in range(args.runs)]
    print(f"{'run':<6}{'wall':>9}{'startup':>10}{'train':>9}{'loss':>18}")
    for index, run in enumerate(runs, 1):
        print(
            f"{index:<6}{run['wall_s']:>8.1f}s{run['runtime_startup_s']:>9.1f}s{run['train_s']:>8.1f}s"
            f"{run['first_loss']:>9.3f} → {run['last_loss']:.3f}"
        )
    summary = {key: statistics.median(run[key] for run in runs) for key in ("wall_s", "runtime_startup_s", "train_s")}
    print(f"{'median':<6}{summary['wall_s']:>8.1f}s{summary['runtime_startup_s']:>9.1f}s{summary['train_s']:>8.1f}s")

    write_report(args.out, "quickstart", steps=args.steps, runs=runs, median=summary)


if __name__ == "__main__":
    main()
