"""Cold start of `ftc validate` and `ftc plan`: each timed as a whole new process, as CI runs them.

`ftc` is the lazy typer CLI (`ftc.cli.typer_app`). Before the argparse CLI it replaced was removed, this
script paired the two in one run (the typer `validate` was bound to at most 1.3x the argparse one, in
median CPU time); that measurement is kept as benchmarks/results/cold_start_typer_vs_argparse.json, and
with argparse gone the pairing can no longer be rerun.

Prints a table and writes JSON (default benchmarks/results/cold_start.json). The goal is a validate
under 0.15 s; this measures, it does not assert.

    python benchmarks/cold_start.py [--runs 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import resource
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
from tests.specs import VALID, replace  # noqa: E402

GOAL_S = 0.15


def ftc_command() -> list[str]:
    # The installed console script is what users run; `python -m ftc` is the fallback.
    found = shutil.which("ftc")
    return [found] if found else [sys.executable, "-m", "ftc"]


def time_process(argv: list[str], runs: int, cwd: Path) -> dict:
    """Wall time, and the child's CPU time (user + system), which a busy shared machine disturbs less."""
    subprocess.run(argv, capture_output=True, cwd=cwd, env=AS_INSTALLED)  # warm the file cache, write .pyc files
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, cwd=cwd, env=AS_INSTALLED)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        "best_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_best_s": min(cpus),
        "cpu_median_s": statistics.median(cpus),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cold_start.json")
    args = parser.parse_args()

    ftc = ftc_command()
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        (cwd / "job.toml").write_text(VALID)
        broken = replace(replace(VALID, "rank = 8", "rnak = 8"), "cutoff_len = 1024", 'cutoff_len = "1k"')
        (cwd / "broken.toml").write_text(broken)
        cases = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "ftc validate (valid)": [*ftc, "validate", "job.toml"],
            "ftc validate (2 errors)": [*ftc, "validate", "broken.toml"],
            "ftc plan (table)": [*ftc, "plan", "job.toml"],
            "ftc plan --format json": [*ftc, "plan", "job.toml", "--format", "json"],
        }
        results = {name: time_process(argv, args.runs, cwd) for name, argv in cases.items()}

    print(f"{'command':<36}{'wall best':>11}{'median':>9}{'cpu best':>11}{'median':>9}")
    for name, result in results.items():
        print(
            f"{name:<36}{result['best_s'] * 1000:>9.0f}ms{result['median_s'] * 1000:>7.0f}ms"
            f"{result['cpu_best_s'] * 1000:>9.0f}ms{result['cpu_median_s'] * 1000:>7.0f}ms"
        )
    validate = results["ftc validate (valid)"]["median_s"]
    print(
        f"goal: validate under {GOAL_S * 1000:.0f} ms — median {validate * 1000:.0f} ms "
        f"({'met' if validate < GOAL_S else 'not met'})"
    )

    shown = " ".join([Path(ftc[0]).name, *ftc[1:]])  # no machine paths in a report that may be committed
    write_report(
        args.out, "cold_start", command=shown, goal_validate_s=GOAL_S, bytecode="cached, as after pip install",
        results=results,
    )  # fmt: skip


if __name__ == "__main__":
    main()
