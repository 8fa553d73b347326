"""`ftc validate` on 100 spec files in one process, as a CI job checks every spec of a repository.

The goal: under 1 s for all 100 on a 2-core machine. 100 distinct specs (models, templates, stages,
methods, learning rates; a fifth of them extending a shared base), all valid, and the same set with
ten broken files whose every error must be reported. Prints a table and writes JSON (default
benchmarks/results/validate_many.json); it measures, it does not assert.

    python benchmarks/validate_many.py [--runs 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._environment import AS_INSTALLED  # noqa: E402
from benchmarks._report import write_report  # noqa: E402
from benchmarks.cold_start import ftc_command, time_process  # noqa: E402
from tests.specs import VALID, replace  # noqa: E402

GOAL_S = 1.0
FILES = 100
MODELS = ["meta-llama/Meta-Llama-3-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3"]
TEMPLATES = ["llama3", "qwen", "mistral"]


def spec_text(index: int) -> str:
    model = index % len(MODELS)
    text = replace(VALID, MODELS[0], MODELS[model])
    text = replace(text, 'template = "llama3"', f'template = "{TEMPLATES[model]}"')
    text = replace(text, "learning_rate = 1e-4", f"learning_rate = {(index + 1) * 1e-5:.1e}")
    text = replace(text, "seed = 42", f"seed = {index}")
    if index % 3 == 0:
        text = replace(text, 'method = "lora"', 'method = "qlora"') + "\n[quantization]\nbits = 4\n"
    return text


def write_specs(folder: Path, broken: int) -> None:
    (folder / "base.toml").write_text(VALID)
    for index in range(FILES):
        name = folder / f"job-{index:03}.toml"
        if index % 5 == 4:  # a fifth extend a base, as sweeps do
            name.write_text(f'extends = "base.toml"\n[train]\nseed = {index}\nlearning_rate = {(index + 1) * 1e-5}\n')
        else:
            name.write_text(spec_text(index))
    standalone = [index for index in range(FILES) if index % 5 != 4]
    for index in standalone[::7][:broken]:  # two mistakes each, both to be reported
        name = folder / f"job-{index:03}.toml"
        text = name.read_text().replace("rank = 8", "rnak = 8").replace("cutoff_len = 1024", 'cutoff_len = "1k"')
        name.write_text(text)
    (folder / "base.toml").rename(folder / "base.toml.in")  # not a job: keep the glob to the 100 jobs
    for index in range(4, FILES, 5):
        job = folder / f"job-{index:03}.toml"
        job.write_text(job.read_text().replace("base.toml", "base.toml.in"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "validate_many.json")
    args = parser.parse_args()

    ftc = ftc_command()
    results = {}
    for label, broken in (("100 valid specs", 0), ("100 specs, 10 broken", 10)):
        with tempfile.TemporaryDirectory() as folder:
            cwd = Path(folder)
            write_specs(cwd, broken)
            argv = [*ftc, "validate", "job-*.toml"]
            check = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=AS_INSTALLED)
            problems = [line for line in check.stdout.splitlines() if line.startswith("job-")]
            results[label] = {
                **time_process(argv, args.runs, cwd),
                "exit_code": check.returncode,
                "problems_reported": len(problems),
            }

    print(f"{'ftc validate job-*.toml':<26}{'wall best':>11}{'median':>9}{'cpu best':>11}{'problems':>10}")
    for name, result in results.items():
        print(
            f"{name:<26}{result['best_s'] * 1000:>9.0f}ms{result['median_s'] * 1000:>7.0f}ms"
            f"{result['cpu_best_s'] * 1000:>9.0f}ms{result['problems_reported']:>10}"
        )
    print(f"goal: all {FILES} in under {GOAL_S:.0f} s in one process")
    write_report(args.out, "validate_many", goal_s=GOAL_S, files=FILES, results=results)


if __name__ == "__main__":
    main()
