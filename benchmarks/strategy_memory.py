"""Peak memory of real runs under each strategy, next to what the plan estimated for them.

Each case is an `ftc launch` of a few SFT steps on a model built from code (nothing is downloaded):
the plan is made for the hardware named, the runtime trains under the strategy and method asked for,
and metrics.json's `peak_memory` holds both sides: on a GPU the caching allocator's allocated and
reserved peaks (the largest over the ranks) and the plan's estimate for the same terms; on CPU
processes their peak RSS, libraries included, which the plan does not count.

`--size 1b` builds a Llama-shaped model of about 1.1 billion parameters (hidden 2560, 20 layers); on
a GPU, ZeRO-2 and ZeRO-3 of it are the measurements the distributed issue asks for:

    python benchmarks/strategy_memory.py --hardware 1xH100-80GB --size 1b --strategies single zero2 zero3
    python benchmarks/strategy_memory.py --hardware 2xcpu --size tiny --strategies ddp zero2 zero3 fsdp

Prints a table and writes JSON (default benchmarks/results/strategy_memory_HARDWARE.json); it measures,
it does not assert.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._environment import AS_INSTALLED  # noqa: E402
from benchmarks._report import write_report  # noqa: E402

SIZES = {  # build_tiny_model's arguments
    "tiny": {"hidden_size": 64, "num_layers": 2},
    "1b": {"hidden_size": 2560, "num_layers": 20},
}
CUTOFF = {"tiny": 128, "1b": 1024}


def spec_for(folder: Path, size: str, method: str, strategy: str) -> dict:
    return {
        "model": {"name_or_path": str(folder / "model"), "template": "llama3"},
        "data": {"datasets": [{"path": str(folder / "data.json"), "format": "alpaca"}], "cutoff_len": CUTOFF[size]},
        "train": {
            "stage": "sft",
            "method": method,
            "strategy": strategy,
            "global_batch_size": 8,
            "max_steps": 3,
            "logging_steps": 1,
            "save_steps": 1000,
            "learning_rate": 1e-4,
        },
        "monitor": {"report_to": []},
        "output": {"dir": str(folder / "runs" / f"{method}-{strategy}")},
    }


def run_case(folder: Path, size: str, method: str, strategy: str, hardware: str) -> dict:
    spec_path = folder / f"{method}-{strategy}.toml"
    spec_path.write_text(tomli_w.dumps(spec_for(folder, size, method, strategy)), encoding="utf-8")
    ftc = shutil.which("ftc")
    command = [*([ftc] if ftc else [sys.executable, "-m", "ftc"]), "launch", str(spec_path), "-H", hardware]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=AS_INSTALLED)
    case = {"method": method, "strategy": strategy, "wall_s": time.perf_counter() - started}
    run_dir = folder / "runs" / f"{method}-{strategy}"
    if result.returncode != 0:
        return {**case, "failed": (result.stdout + result.stderr).strip().splitlines()[-1:]}
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        **case,
        "micro_batch_size": plan["micro_batch_size"],
        "accumulation": plan["gradient_accumulation_steps"],
        "world_size": plan["world_size"],
        **metrics["peak_memory"],
    }


def error(planned: float | None, measured: float | None) -> str:
    return f"{(planned - measured) / measured:+.1%}" if planned and measured else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hardware", default="1xH100-80GB", help="as ftc plan takes it, e.g. 1xH100-80GB or 2xcpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--methods", nargs="+", default=["full", "lora"])
    parser.add_argument("--strategies", nargs="+", default=["single", "zero2", "zero3"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from ftc.quickstart.tiny import build_tiny_model, write_tiny_alpaca

    cases = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        build_tiny_model(folder / "model", **SIZES[args.size])
        write_tiny_alpaca(folder / "data.json", n=64)
        on_gpu = not args.hardware.lower().endswith("cpu")
        columns = ("allocated", "planned", "error", "reserved", "planned", "error") if on_gpu else ("host RSS", "plan")
        print(f"{'case':<16}{'micro×acc×world':>17}" + "".join(f"{column:>10}" for column in columns))
        for method in args.methods:
            for strategy in args.strategies:
                case = run_case(folder, args.size, method, strategy, args.hardware)
                cases.append(case)
                label = f"{method}-{strategy}"
                if "failed" in case:
                    print(f"{label:<16} failed: {' '.join(case['failed'])}")
                    continue
                shape = f"{case['micro_batch_size']}×{case['accumulation']}×{case['world_size']}"
                if on_gpu:
                    allocated, reserved = case["allocated_gib"], case["reserved_gib"]
                    planned, planned_reserved = case.get("planned_allocated_gib"), case.get("planned_reserved_gib")
                    cells = [f"{allocated:.2f}", f"{planned or 0:.2f}", error(planned, allocated), f"{reserved:.2f}",
                             f"{planned_reserved or 0:.2f}", error(planned_reserved, reserved)]  # fmt: skip
                else:  # RSS holds the libraries too: the plan's host figure is for training state alone
                    cells = [f"{case['host_rss_gib']:.2f}", f"{case.get('planned_host_gib') or 0:.2f}"]
                print(f"{label:<16}{shape:>17}" + "".join(f"{cell:>10}" for cell in cells), flush=True)
    out = args.out or Path(__file__).parent / "results" / f"strategy_memory_{args.hardware}.json"
    write_report(out, "strategy_memory", hardware=args.hardware, size=args.size, model=SIZES[args.size], cases=cases)


if __name__ == "__main__":
    main()
