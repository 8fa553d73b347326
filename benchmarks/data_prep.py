"""Data preparation speed: the runtime's own path from a JSONL file to prepared rows, beside the tokenizer alone.

For each format a JSONL file of `--records` synthetic records is written (a pool of `--distinct` records
from the tiny model's generators, repeated: writing a million lines costs a second, not minutes), and
the tiny model's tokenizer prepares it as a run would:

- alpaca, sharegpt and messages as sft conversations (template llama3), text as pt documents; each with
  and without packing. *cold* is `prepared_data` with an empty cache folder, exactly as
  `token_stage_data` calls it: the cache key (hashing the data file), reading and checking the records,
  rendering, encoding, cutting, packing, and writing the Arrow entry. *cached* is the same call again,
  a hit. *tokenizer-only* is the fast tokenizer's own `encode_batch_fast` over the same texts whole
  (each conversation rendered by the template, each document as is), in the runtime's chunks, with
  every core; only the encode calls are timed, so cold/tokenizer is what the rest of the path costs.
- preference as dpo pairs: reading them and the length-measuring pass the dpo stage runs
  (`encode_pairs`). Nothing is cached: trl tokenizes preference data itself. Its tokenizer-only time
  encodes each pair's two conversations (prompt + chosen, prompt + rejected). That pass goes pair by
  pair, far slower than the batched token stages, so it gets at most `--preference-records` records
  (default 50,000) unless told more.

Each number is one run, not the best of several. The tiny tokenizer has a small vocabulary and the texts
are short, so absolute speeds say little about a real model's; the ratio to the tokenizer is the point.
Prints a table and writes JSON (default benchmarks/results/data_prep.json).

    python benchmarks/data_prep.py [--records 50000] [--formats alpaca sharegpt messages text preference]
                                   [--no-packing-variants] [--preference-records 50000] [--cutoff-len 512]
                                   [--distinct 4096] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import write_report  # noqa: E402
from ftc.quickstart.tiny import build_tiny_model, tiny_preferences, tiny_records, tiny_texts  # noqa: E402
from ftc.runtime.data.batch_encode import CHUNK  # noqa: E402
from ftc.runtime.data.loading import (  # noqa: E402
    Conversation,
    TextDocument,
    load_conversations,
    load_preferences,
    load_texts,
    train_eval_split,
)
from ftc.runtime.data.preference import assistant, encode_pairs  # noqa: E402
from ftc.runtime.data.prepared import prepare_token_rows, prepared_data  # noqa: E402
from ftc.runtime.data.recipes import stage_tokenizer  # noqa: E402
from ftc.runtime.data.tokenize import use_template  # noqa: E402
from ftc.runtime.model.loading import load_tokenizer  # noqa: E402
from ftc.spec.chat_templates import TEMPLATES  # noqa: E402
from ftc.spec.models import Spec  # noqa: E402
from tests.tiny_runs import tiny_spec  # noqa: E402

TEMPLATE = "llama3"
FORMATS = ("alpaca", "sharegpt", "messages", "text", "preference")
STAGES = {"alpaca": "sft", "sharegpt": "sft", "messages": "sft", "text": "pt", "preference": "dpo"}
SYSTEM = "You are a helpful assistant."
WARMUP_TEXTS = 1000  # encoded before the tokenizer-only timing: the first call starts the thread pool


# --- records ------------------------------------------------------------------------------------


def record_pool(data_format: str, distinct: int, seed: int = 0) -> list[str]:
    """`distinct` JSON lines of `data_format`; a conversation has 1 to 3 turns, a third of them a system prompt."""
    if data_format == "text":
        return [json.dumps({"text": text}) for text in tiny_texts(distinct, seed)]
    if data_format == "preference":
        return [json.dumps(record) for record in tiny_preferences(distinct, seed)]
    if data_format == "alpaca":
        return [json.dumps(record) for record in tiny_records(distinct, seed)]
    rng = random.Random(seed + 3)
    tasks = iter(tiny_records(3 * distinct, seed))
    lines = []
    for _ in range(distinct):
        messages = [{"role": "system", "content": SYSTEM}] if rng.random() < 1 / 3 else []
        for task in (next(tasks) for _ in range(rng.randint(1, 3))):
            prompt = "\n\n".join(part for part in (task["instruction"], task["input"]) if part)
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": task["output"]}]
        lines.append(json.dumps(as_sharegpt(messages) if data_format == "sharegpt" else {"messages": messages}))
    return lines


def as_sharegpt(messages: list[dict[str, str]]) -> dict[str, Any]:
    speakers = {"system": "system", "user": "human", "assistant": "gpt"}
    return {"conversations": [{"from": speakers[message["role"]], "value": message["content"]} for message in messages]}


def write_records(path: Path, pool: list[str], count: int) -> Path:
    """`count` lines, the pool over and over: a block write per repeat."""
    repeats, rest = divmod(count, len(pool))
    block = "\n".join(pool) + "\n"
    with path.open("w", encoding="utf-8") as sink:
        for _ in range(repeats):
            sink.write(block)
        if rest:
            sink.write("\n".join(pool[:rest]) + "\n")
    return path


# --- measuring ----------------------------------------------------------------------------------


def prepare_once(spec: Spec, tokenizer: Any) -> tuple[float, dict[str, Any], Any]:
    """(seconds, the report, the training rows) of one call, as `token_stage_data` makes it: the stage's
    recipe reads the records, encodes and describes them, and `prepare_rows` packs them where asked."""
    started = time.perf_counter()
    data = prepared_data(spec, lambda: prepare_token_rows(spec, tokenizer))
    return time.perf_counter() - started, data.report, data.train


def time_token_stage(spec: Spec, tokenizer: Any) -> dict[str, Any]:
    """Cold (an empty cache folder) and cached (the same call again) preparation."""
    cold_s, cold, _ = prepare_once(spec, tokenizer)
    cached_s, cached, train = prepare_once(spec, tokenizer)
    if (cold["cache"], cached["cache"]) != ("miss", "hit"):
        raise SystemExit(f"expected a cache miss, then a hit; got {cold['cache']}, then {cached['cache']}")
    meta = json.loads((Path(cached["where"]) / "meta.json").read_text(encoding="utf-8"))
    return {
        "cold_s": cold_s,
        "cached_s": cached_s,
        "records": cold["records"],
        "rows": len(train),
        "tokens": meta["tokens"],
        "lines": meta["lines"],
    }


def time_preferences(spec: Spec, tokenizer: Any) -> dict[str, Any]:
    """Reading the pairs, then the measuring pass the dpo stage runs before it hands them to trl."""
    seed = spec.train.seed
    started = time.perf_counter()
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)
    read = time.perf_counter()
    data = encode_pairs(tokenizer, pairs, spec.model.template, spec.data.cutoff_len)
    done = time.perf_counter()
    return {
        "cold_s": done - started,
        "read_s": read - started,
        "measure_s": done - read,
        "cached_s": None,
        "records": len(pairs) + len(held_out),
        "rows": len(data.records),
        "tokens": sum(data.prompt_tokens) + sum(data.reply_tokens),  # prompt + the longer reply, per pair
    }


def rendered_texts(spec: Spec) -> Iterator[list[str]]:
    """The texts the run encodes, whole, a chunk at a time: conversations rendered by the template, documents as is."""
    template = TEMPLATES[spec.model.template]
    data_format, seed = spec.data.datasets[0].format, spec.train.seed
    if data_format == "text":
        items: Sequence[Any] = load_texts(spec.data, seed)
    elif data_format == "preference":
        items = load_preferences(spec.data, seed)
    else:
        items = load_conversations(spec.data, seed)

    def texts_of(item: Any) -> list[str]:
        if isinstance(item, TextDocument):
            return [item.text]
        if isinstance(item, Conversation):
            return [template.render(item.messages)]
        return [template.render(item.prompt + assistant(reply)) for reply in (item.chosen, item.rejected)]

    for start in range(0, len(items), CHUNK):
        yield [text for item in items[start : start + CHUNK] for text in texts_of(item)]


def time_tokenizer_only(spec: Spec, tokenizer: Any) -> dict[str, Any]:
    """The fast tokenizer's batch encode of the rendered texts, every core on; only the encode calls are timed."""
    backend = tokenizer.backend_tokenizer
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    seconds, texts, tokens = 0.0, 0, 0
    try:
        for index, chunk in enumerate(rendered_texts(spec)):
            if index == 0:
                backend.encode_batch_fast(chunk[:WARMUP_TEXTS], add_special_tokens=False)
            started = time.perf_counter()
            encodings = backend.encode_batch_fast(chunk, add_special_tokens=False)
            seconds += time.perf_counter() - started
            texts += len(chunk)
            tokens += sum(len(encoding) for encoding in encodings)
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
    return {"tokenizer_s": seconds, "tokenizer_texts": texts, "tokenizer_tokens": tokens}


def run_spec(folder: Path, model_dir: Path, data_path: Path, data_format: str, packing: bool, cutoff_len: int) -> Spec:
    name = f"{data_format}-{'packed' if packing else 'unpacked'}"
    raw = tiny_spec(folder / "runs" / name, model_dir, data_path, data_format, stage=STAGES[data_format])
    raw["data"].update(cutoff_len=cutoff_len, packing=packing, cache_dir=str(folder / "cache" / name))
    return Spec.model_validate(raw)


def measure_format(folder: Path, model_dir: Path, data_format: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    started = time.perf_counter()
    count = min(args.records, args.preference_records) if data_format == "preference" else args.records
    data_path = write_records(folder / f"{data_format}.jsonl", record_pool(data_format, args.distinct), count)
    print(
        f"{data_format}: {count:,} records written in {time.perf_counter() - started:.1f} s "
        f"({data_path.stat().st_size / 2**20:.0f} MiB)",
        flush=True,
    )
    variants = [False] if args.no_packing_variants or data_format == "preference" else [False, True]
    results = []
    baseline = None
    for packing in variants:
        spec = run_spec(folder, model_dir, data_path, data_format, packing, args.cutoff_len)
        if data_format == "preference":
            tokenizer = load_tokenizer(spec.model)  # as `tokenizer_and_records` gives it the template
            use_template(tokenizer, spec.model.template)
            numbers = time_preferences(spec, tokenizer)
        else:
            tokenizer = stage_tokenizer(spec)
            numbers = time_token_stage(spec, tokenizer)
        shutil.rmtree(spec.data.cache_dir, ignore_errors=True)  # a million packed rows fill a disk quickly
        baseline = baseline or time_tokenizer_only(spec, tokenizer)  # the same texts, packed or not
        results.append(
            {
                "format": data_format,
                "stage": spec.train.stage,
                "packing": packing if data_format != "preference" else None,
                **numbers,
                **baseline,
                "cold_over_tokenizer": numbers["cold_s"] / baseline["tokenizer_s"],
                "records_per_s": numbers["records"] / numbers["cold_s"],
            }
        )
    data_path.unlink()
    return results


# --- the report ---------------------------------------------------------------------------------


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'format':<11}{'packing':<9}{'records':>10}{'cold s':>9}{'cached s':>10}{'tokenizer s':>13}"
        f"{'cold/tok':>10}{'records/s':>11}{'rows':>10}{'tokens':>12}"
    )
    print(header)
    for result in results:
        packing = "—" if result["packing"] is None else ("yes" if result["packing"] else "no")
        cached = "—" if result["cached_s"] is None else f"{result['cached_s']:.3f}"
        print(
            f"{result['format']:<11}{packing:<9}{result['records']:>10,}{result['cold_s']:>9.2f}{cached:>10}"
            f"{result['tokenizer_s']:>13.2f}{result['cold_over_tokenizer']:>9.1f}×{result['records_per_s']:>11,.0f}"
            f"{result['rows']:>10,}{result['tokens']:>12,}"
        )
    if any(result["cached_s"] is None for result in results):
        print("preference: no cache (trl tokenizes); cold is reading the pairs and measuring their lengths")


def machine_facts() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    libraries = ("tokenizers", "transformers", "datasets", "pyarrow")
    return {
        "processor": platform.processor() or None,
        "usable_cpus": usable,
        "versions": {name: version(name) for name in libraries},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000, help="records per format")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--no-packing-variants", action="store_true", help="prepare each format unpacked only")
    parser.add_argument(
        "--preference-records",
        type=int,
        default=50_000,
        help="at most this many for preference (measured pair by pair)",
    )
    parser.add_argument("--cutoff-len", type=int, default=512)
    parser.add_argument("--distinct", type=int, default=4096, help="distinct records, repeated to make --records")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_prep.json")
    args = parser.parse_args()
    import datasets  # noqa: F401  (imported before timing: the first cold run would pay for it otherwise)
    import filelock  # noqa: F401
    import pyarrow  # noqa: F401

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        model_dir = build_tiny_model(folder / "model")
        results = [
            result for data_format in args.formats for result in measure_format(folder, model_dir, data_format, args)
        ]
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux counts kilobytes

    print()
    print(
        f"{args.records:,} records per format ({args.distinct:,} distinct), cutoff_len {args.cutoff_len}, "
        f"template {TEMPLATE}; {machine_facts()['usable_cpus']} usable cores; peak memory {peak_rss_mib:,.0f} MiB; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    print_table(results)
    write_report(
        args.out,
        "data_prep",
        **machine_facts(),
        records=args.records,
        preference_records=min(args.records, args.preference_records),
        distinct=args.distinct,
        cutoff_len=args.cutoff_len,
        template=TEMPLATE,
        peak_rss_mib=round(peak_rss_mib),
        seconds=round(time.perf_counter() - started, 1),
        results=results,
    )


if __name__ == "__main__":
    main()
