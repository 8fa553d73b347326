"""Sequence packing's speed-up: training tokens per second with and without packing, on variable-length data.

The tiny model trains one epoch over the same synthetic examples (lengths drawn from a long-tailed
distribution, as chat and pre-training data have) in two ways: one example per row, padded to the
longest in its batch; or packed into rows of up to cutoff_len tokens by `ftc.runtime.data.packing`. Only
real tokens count, so the padding a batch drags along shows up as lost speed. Each step is forward,
backward and an AdamW update, on the CPU with one torch thread. Speed is real tokens per second of
this process's CPU time (wall time is shown too, but a shared machine skews it); each mode runs
`--repeats` epochs, interleaved with the other's, and the fastest counts. Prints a table and writes
JSON (default benchmarks/results/packing.json).

    python benchmarks/packing.py [--examples 256] [--cutoff-len 256] [--batch 8] [--attention sdpa eager]
                                 [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import write_report  # noqa: E402
from ftc.quickstart.tiny import build_tiny_model  # noqa: E402
from ftc.runtime.data.packing import PackedCollator, PaddingCollator, pack_examples  # noqa: E402

WARMUP_STEPS = 2
MODES = ("padded", "packed")


def synthetic_examples(count: int, cutoff_len: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Lengths from a log-normal (median ~cutoff/6, a long tail up to cutoff_len), token ids at random."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        length = max(8, min(cutoff_len, round(rng.lognormvariate(0, 0.8) * cutoff_len / 6)))
        ids = [rng.randrange(4, vocab) for _ in range(length)]
        examples.append({"input_ids": ids, "labels": list(ids)})
    return examples


def one_epoch(model_dir: Path, rows: list[dict], collate, batch: int, attention: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attention).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [collate(rows[start : start + batch]) for start in range(0, len(rows), batch)]

    def step(inputs: dict) -> None:
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for inputs in batches[:WARMUP_STEPS]:  # first calls allocate and pick kernels
        step(inputs)
    start, cpu_start = time.perf_counter(), time.process_time()
    for inputs in batches:
        step(inputs)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    real_tokens = sum(len(row["input_ids"]) for row in rows)
    row_tokens = sum(inputs["input_ids"].numel() for inputs in batches)
    return {
        "steps": len(batches),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "real_tokens": real_tokens,
        "row_tokens": row_tokens,
        "padding": 1 - real_tokens / row_tokens,
        "tokens_per_s": real_tokens / seconds,
        "tokens_per_cpu_s": real_tokens / cpu_seconds,
    }


def compare(model_dir: Path, examples: list[dict], cutoff_len: int, batch: int, attention: str, repeats: int) -> dict:
    rows = {
        "padded": random.Random(1).sample(examples, len(examples)),  # the trainer's random order
        "packed": pack_examples(examples, cutoff_len),
    }
    collators = {"padded": PaddingCollator(0), "packed": PackedCollator(0)}
    tries: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(repeats):  # interleaved, so a busy spell on a shared machine hits both modes
        for mode in MODES:
            tries[mode].append(one_epoch(model_dir, rows[mode], collators[mode], batch, attention))
    best = {mode: max(tries[mode], key=lambda run: run["tokens_per_cpu_s"]) for mode in MODES}
    return {
        "attention": attention,
        **best,
        "speedup": best["packed"]["tokens_per_cpu_s"] / best["padded"]["tokens_per_cpu_s"],
        "all_tokens_per_cpu_s": {mode: [round(run["tokens_per_cpu_s"]) for run in tries[mode]] for mode in MODES},
    }


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--cutoff-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8, help="rows per step, packed or not")
    parser.add_argument("--attention", nargs="+", default=["sdpa", "eager"])
    parser.add_argument("--repeats", type=int, default=3, help="epochs per mode; the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is compute time)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "packing.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_model(Path(folder) / "model")
        from transformers import AutoConfig

        examples = synthetic_examples(args.examples, args.cutoff_len, AutoConfig.from_pretrained(model_dir).vocab_size)
        runs = [
            compare(model_dir, examples, args.cutoff_len, args.batch, attention, args.repeats)
            for attention in args.attention
        ]

    lengths = [len(example["input_ids"]) for example in examples]
    packed_rows = len(pack_examples(examples, args.cutoff_len))
    print(
        f"{len(examples)} examples, {sum(lengths)} tokens, lengths {min(lengths)}–{max(lengths)} "
        f"(mean {sum(lengths) / len(lengths):.0f}); {packed_rows} packed rows of ≤ {args.cutoff_len}; "
        f"{args.batch} rows a step; torch threads {torch.get_num_threads()}; best of {args.repeats}"
    )
    print(f"{'attention':<10}{'mode':<8}{'steps':>6}{'padding':>9}{'tok/cpu-s':>11}{'tok/s':>8}{'speed-up':>10}")
    for run in runs:
        for mode in MODES:
            numbers = run[mode]
            speedup = numbers["tokens_per_cpu_s"] / run["padded"]["tokens_per_cpu_s"]
            print(
                f"{run['attention']:<10}{mode:<8}{numbers['steps']:>6}{numbers['padding']:>9.0%}"
                f"{numbers['tokens_per_cpu_s']:>11.0f}{numbers['tokens_per_s']:>8.0f}{speedup:>9.2f}×"
            )

    write_report(
        args.out,
        "packing",
        examples=len(examples),
        tokens=sum(lengths),
        cutoff_len=args.cutoff_len,
        batch_rows=args.batch,
        packed_rows=packed_rows,
        torch_threads=torch.get_num_threads(),
        repeats=args.repeats,
        runs=runs,
    )


if __name__ == "__main__":
    main()
