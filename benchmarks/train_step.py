"""The SFT training step beyond the model: what the quickstart's 60 LoRA steps spend besides forward and backward.

The quickstart's fixture (tiny model, 256 alpaca records, quickstart.toml) trains as `ftc launch` runs
it: a run folder from `ftc launch --dry-run`, then `python -m ftc.runtime RUN_DIR` in a process of its
own, here with a few counters put in first. Three variants, interleaved `--repeats` times (the fastest
counts: a shared machine only ever slows a run down):

- unpacked: the spec as written, through trl's SFTTrainer with the loss head the plan chose (on the
  CPU, the model's own loss; entropy and token accuracy at the logged steps: ftc.runtime.loss_head);
- fused: the same with train.loss_head = "fused", trl's chunked head at every step (what ftc ran before
  the plan chose; not run with --source, whose ftc may not know the key);
- packed: the spec with data.packing = true;
- Trainer: the unpacked run through transformers' plain Trainer instead, the loss the model's own
  (full logits, cross-entropy from the labels) and ftc's PaddingCollator: what trl's path costs here.

Real tokens are the non-padding input positions of the micro-batches the optimizer steps consumed
(the attention mask's sum, or a packed row's example lengths), counted as each batch is collated.
Train seconds are metrics.json's train_runtime_s. Torch keeps its default thread count.

Then the unpacked run is profiled with both trainers (`--profile-repeats`, the fastest kept): wall
time of each part of the step, each part's own time (the parts inside it taken out), per micro-step:
the decoder's forward, the backward (autograd: decoder and LoRA, and the plain Trainer's LM head and
cross-entropy, which run inside it), trl's fused LM head forward and backward, the rest of the model
call, compute_loss's bookkeeping, collation, data loading, each callback, checkpoint saving, the
optimizer. What no part holds is "unattributed"; it can be slightly negative, as the last log and
on_train_end are timed but come after the clock stops. Prints the tables and writes JSON (default
benchmarks/results/train_step.json).

With the default two threads on a two-core machine, one other busy process can make a run several
times slower (torch's threads wait for each other), sometimes a hundred times: hence the interleaving,
the fastest of several, and `--run-timeout`, past which a training process is stopped and its try
shown as "–" (an uncontended one takes about 15 s, startup included).

`--source DIR` runs another checkout's ftc (a `git worktree` of an older commit) in the training
processes; the fixture is still this checkout's.

    python benchmarks/train_step.py [--repeats 3] [--profile-repeats 3] [--steps 60] [--source DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    name: str
    packing: bool
    trainer: str  # "trl": ftc's SFT path; "plain": transformers' Trainer with the model's own loss
    loss_head: str | None = None  # train.loss_head, where the variant sets it


VARIANTS = (
    Variant("unpacked", packing=False, trainer="trl"),
    Variant("fused", packing=False, trainer="trl", loss_head="fused"),
    Variant("packed", packing=True, trainer="trl"),
    Variant("Trainer", packing=False, trainer="plain"),
)
PROFILED = (VARIANTS[0], VARIANTS[3])


# ---------------------------------------------------------------------------------------------------
# The training process: ftc's runtime, with counters installed before it starts.


class Stopwatch:
    """Wall time per part of the step; each part's own, the parts timed inside it taken out."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._open: list[str] = []  # the parts now running, innermost last
        self._inner: list[float] = []  # per open span, the time spent in spans inside it

    @contextmanager
    def span(self, part: str):
        self._open.append(part)
        self._inner.append(0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self._open.pop()
            self.seconds[part] += elapsed - self._inner.pop()
            self.calls[part] += 1
            if self._inner:
                self._inner[-1] += elapsed

    def wrap(self, part: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if self._open and self._open[-1] == part:  # a recursive call (Module.train): the outer span holds it
                return function(*args, **kwargs)
            with self.span(part):
                return function(*args, **kwargs)

        return timed

    def time_method(self, owner: type, name: str, part: str) -> None:
        """Time `owner`'s own `name` (an override is timed where it is listed, not through its base)."""
        raw = inspect.getattr_static(owner, name)
        if isinstance(raw, staticmethod):
            setattr(owner, name, staticmethod(self.wrap(part, raw.__func__)))
        else:
            setattr(owner, name, self.wrap(part, raw))

    def report(self) -> dict[str, dict[str, float]]:
        return {part: {"seconds": self.seconds[part], "calls": self.calls[part]} for part in self.seconds}


# The parts, each named by the function whose own time it is. The optimizer's parts run once per
# optimizer step, the others once per micro-step. "outside the clock" is before and after the span
# train_runtime measures (optimizer and dataloader set-up, the final log).
TIMED_METHODS = (
    ("transformers", "Trainer", "train", "outside the clock"),
    ("transformers", "Trainer", "_inner_training_loop", "outside the clock"),
    ("transformers", "Trainer", "_run_epoch", "trainer loop (flops, token counts, loss sums)"),
    ("transformers", "Trainer", "floating_point_ops", "trainer loop: flops count (walks the parameters)"),
    ("transformers", "Trainer", "get_batch_samples", "data loading"),
    ("transformers", "Trainer", "training_step", "training_step (inputs, loss scaling)"),
    ("transformers", "Trainer", "compute_loss", "compute_loss bookkeeping"),
    ("trl", "SFTTrainer", "compute_loss", "compute_loss bookkeeping"),
    ("trl", "SFTTrainer", "training_step", "training_step (inputs, loss scaling)"),
    ("torch.nn", "Module", "train", "training_step: model.train() (walks the modules)"),
    ("peft", "PeftModelForCausalLM", "forward", "model call, rest (LM head and loss glue; plain: the projection)"),
    ("transformers.models.llama.modeling_llama", "LlamaModel", "forward", "decoder forward"),
    ("trl.kernels.chunked_logprob", "ChunkedLogProbFunction", "forward", "fused LM head forward"),
    ("trl.kernels.chunked_logprob", "ChunkedLogProbFunction", "backward", "fused LM head backward"),
    ("accelerate", "Accelerator", "backward", "backward (autograd, less the fused head's)"),
    ("transformers", "Trainer", "_clip_grad_norm", "optimizer: gradient clipping"),
    ("transformers", "Trainer", "_get_grad_norm", "optimizer: gradient clipping"),
    ("accelerate.optimizer", "AcceleratedOptimizer", "step", "optimizer: AdamW step"),
    ("torch.optim.lr_scheduler", "LRScheduler", "step", "optimizer: lr schedule, zero_grad"),
    ("torch.nn", "Module", "zero_grad", "optimizer: lr schedule, zero_grad"),
    ("transformers", "Trainer", "_maybe_log_save_evaluate", "logging (loss .item(), log dicts)"),
    ("transformers", "Trainer", "log", "logging (loss .item(), log dicts)"),
    ("trl", "SFTTrainer", "log", "logging (loss .item(), log dicts)"),
    ("transformers", "Trainer", "_save_checkpoint", "checkpoint saving"),
    ("trl", "SFTTrainer", "_save_checkpoint", "checkpoint saving"),
    ("trl.trainer.base_trainer", "_BaseTrainer", "create_model_card", "checkpoint saving: trl's model card"),
)
LOSS_PART = "plain loss forward (cross-entropy)"

# The parts summed by what they are for, in the order the summary shows them.
GROUPS = {
    "model forward + backward (decoder, LoRA)": ("decoder forward", "backward (autograd"),
    "LM head and loss": ("fused LM head", "model call, rest", LOSS_PART),
    "trainer bookkeeping": ("compute_loss", "training_step", "trainer loop", "logging"),
    "data (loading, collation)": ("data loading", "collation"),
    "optimizer (clip, AdamW, schedule)": ("optimizer:",),
    "checkpoints (save, model card, sealing)": ("checkpoint saving", "callback SealCheckpoints"),
    "other callbacks (progress, metrics.json, tensorboard, ...)": ("callback ",),
    "unattributed": ("unattributed",),
}


def install_stopwatch(stopwatch: Stopwatch) -> None:
    import importlib

    from transformers import trainer_callback
    from transformers.loss import loss_utils

    for module, owner, name, part in TIMED_METHODS:
        stopwatch.time_method(getattr(importlib.import_module(module), owner), name, part)
    # The model reads its loss function from this table at each call.
    loss_utils.LOSS_MAPPING["ForCausalLM"] = stopwatch.wrap(LOSS_PART, loss_utils.LOSS_MAPPING["ForCausalLM"])

    def call_event(self, event, args, state, control, **kwargs):
        # transformers' loop, each callback timed on its own
        for callback in self.callbacks:
            with stopwatch.span(f"callback {type(callback).__name__}"):
                result = getattr(callback, event)(
                    args,
                    state,
                    control,
                    model=self.model,
                    processing_class=self.processing_class,
                    optimizer=self.optimizer,
                    lr_scheduler=self.lr_scheduler,
                    train_dataloader=self.train_dataloader,
                    eval_dataloader=self.eval_dataloader,
                    **kwargs,
                )
            if result is not None:
                control = result
        return control

    trainer_callback.CallbackHandler.call_event = call_event


class CountingCollator:
    """The trainer's collator, noting each batch's real and padded token counts in the order batches are made."""

    def __init__(self, collate: Any, counts: deque, stopwatch: Stopwatch | None) -> None:
        self.collate = collate
        self.counts = counts
        self.stopwatch = stopwatch

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        with self.stopwatch.span("collation") if self.stopwatch else nullcontext():
            batch = self.collate(rows)
        if "attention_mask" in batch:  # one example per row: the mask marks the real tokens
            real = int(batch["attention_mask"].sum())
        else:  # packed rows: their examples' lengths (a row that was not packed is one example)
            real = sum(sum(row.get("seq_lengths") or [len(row["input_ids"])]) for row in rows)
        self.counts.append((real, batch["input_ids"].numel()))
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collate, name)


def install_token_counter(totals: dict[str, int], stopwatch: Stopwatch | None) -> None:
    """Count the batches training_step consumes: the dataloader collates one batch ahead of them."""
    from transformers import Trainer

    counts: deque = deque()
    original_init, original_step, original_train = Trainer.__init__, Trainer.training_step, Trainer.train

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.data_collator = CountingCollator(self.data_collator, counts, stopwatch)

    def training_step(self, *args, **kwargs):
        real, rows = counts.popleft()
        totals["micro_steps"] += 1
        totals["real_tokens"] += real
        totals["row_tokens"] += rows
        return original_step(self, *args, **kwargs)

    def train(self, *args, **kwargs):
        try:
            return original_train(self, *args, **kwargs)
        finally:
            totals["steps"] = self.state.global_step

    Trainer.__init__, Trainer.training_step, Trainer.train = __init__, training_step, train


def use_plain_trainer() -> None:
    """ftc's SFT stage, given transformers' Trainer (the model computes its loss from the labels) in trl's place."""
    import trl
    from transformers import Trainer, TrainingArguments

    from ftc.runtime import loss_head
    from ftc.runtime.data.packing import PaddingCollator

    class PlainTrainer(Trainer):
        def __init__(self, *, data_collator=None, processing_class=None, **kwargs) -> None:
            collator = data_collator or PaddingCollator(processing_class.pad_token_id)
            super().__init__(data_collator=collator, processing_class=processing_class, **kwargs)

    def plain_arguments(max_length=None, dataset_kwargs=None, **arguments):  # SFTConfig's own keys dropped
        return TrainingArguments(**arguments)

    # the stage imports both from trl when it runs, after this; its own loss is the model's already
    trl.SFTTrainer, trl.SFTConfig = PlainTrainer, plain_arguments
    loss_head.with_model_loss = lambda trainer_class: trainer_class


def train_in_this_process(run_dir: str, report: Path, trainer: str, timed: bool) -> int:
    """`python -m ftc.runtime RUN_DIR`, counted (and timed); what was counted goes to `report`."""
    import runpy

    import torch

    stopwatch = Stopwatch() if timed else None
    totals: dict[str, int] = defaultdict(int)
    if stopwatch is not None:
        install_stopwatch(stopwatch)  # first: the counter's wrappers then sit outside the timed methods
    install_token_counter(totals, stopwatch)
    if trainer == "plain":
        use_plain_trainer()
    sys.argv = ["ftc.runtime", run_dir]
    code: Any = 0
    try:
        runpy.run_module("ftc.runtime", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
    import ftc

    numbers = {**totals, "torch_threads": torch.get_num_threads(), "exit_code": code}
    numbers["ftc_root"] = str(Path(ftc.__file__).resolve().parent.parent)  # checked by the parent, not reported
    if stopwatch is not None:
        numbers["parts"] = stopwatch.report()
    report.write_text(json.dumps(numbers))
    return code if isinstance(code, int) else 1


# ---------------------------------------------------------------------------------------------------
# The benchmark: fixture, run folders, runs, tables.


def write_variant_specs(workspace: Path, spec: Path, variants: tuple[Variant, ...]) -> dict[str, Path]:
    """Each variant's quickstart spec (data.packing, train.loss_head as it sets them), its own output folder."""
    text = spec.read_text()
    specs = {}
    for variant in variants:
        written = _replace_once(text, 'dir = "runs/quickstart"', f'dir = "runs/{variant.name}"')
        if variant.packing:
            written = _replace_once(written, "[data]\n", "[data]\npacking = true\n")
        if variant.loss_head:
            written = _replace_once(written, "[train]\n", f'[train]\nloss_head = "{variant.loss_head}"\n')
        specs[variant.name] = workspace / f"{variant.name}.toml"
        specs[variant.name].write_text(written)
    return specs


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(f"the quickstart spec changed: expected {old!r} once in it")
    return text.replace(old, new)


def child_environment(source: Path, cache: Path) -> dict[str, str]:
    from benchmarks._environment import AS_INSTALLED

    # run.sh's settings, the chosen checkout's ftc first on the path, and a prepared-data cache of our own
    path = os.pathsep.join(filter(None, [str(source), AS_INSTALLED.get("PYTHONPATH")]))
    return {
        **AS_INSTALLED,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "FTC_CACHE": str(cache),
    }


def train_once(
    variant: Variant, spec: Path, env: dict[str, str], source: Path, timed: bool, timeout: float
) -> dict[str, Any] | None:
    """A fresh run folder from `ftc launch --dry-run`, trained by a process of its own; None past `timeout`."""
    launched = subprocess.run(
        [sys.executable, "-m", "ftc", "launch", spec.name, "--dry-run", "--overwrite"],
        cwd=spec.parent, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if launched.returncode != 0:
        raise SystemExit(f"ftc launch {spec.name} failed:\n{launched.stdout}{launched.stderr}")
    run_dir = spec.parent / "runs" / variant.name
    report = run_dir.parent / f"{variant.name}-counts.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(run_dir), "--report", str(report)]
    command += ["--trainer", variant.trainer] + (["--timed"] if timed else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        trained = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None  # a busy machine: this try says nothing about the code
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if trained.returncode != 0:
        raise SystemExit(f"training {variant.name} failed:\n{trained.stdout[-4000:]}{trained.stderr[-4000:]}")
    counted = json.loads(report.read_text())
    if Path(counted["ftc_root"]) != source:
        raise SystemExit(f"the training process imported ftc from {counted['ftc_root']}, not from {source}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    seconds = metrics["train_runtime_s"]
    return {
        "train_s": seconds,
        "steps": counted["steps"],
        "micro_steps": counted["micro_steps"],
        "real_tokens": counted["real_tokens"],
        "row_tokens": counted["row_tokens"],
        "padding": 1 - counted["real_tokens"] / counted["row_tokens"],
        "real_tokens_per_s": counted["real_tokens"] / seconds,
        "startup_s": metrics.get("startup_s"),
        "process_cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        "first_loss": metrics.get("first_loss"),
        "last_loss": metrics.get("last_loss"),
        "torch_threads": counted["torch_threads"],
        **({"parts": counted["parts"]} if timed else {}),
    }


def source_record(source: Path | None) -> dict[str, Any]:
    """Which ftc trained: this checkout or another, and its commit (no paths: the report may be committed)."""
    where = source or ROOT
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True).stdout.strip()
    return {"ftc": "another checkout (--source)" if source else "this checkout", "commit": commit or None}


def fastest(name: str, tries: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The fastest try, with every try's train seconds (None: stopped at --run-timeout)."""
    finished = [run for run in tries if run is not None]
    if not finished:
        raise SystemExit(f"every run of {name} ran past --run-timeout: the machine is busy; try again later")
    best = min(finished, key=lambda run: run["train_s"])
    return {**best, "all_train_s": [run and run["train_s"] for run in tries]}


def profile_rows(parts: dict[str, dict[str, float]], train_s: float, micro_steps: int) -> dict[str, dict[str, float]]:
    inside = {part: numbers for part, numbers in parts.items() if part != "outside the clock"}
    rows = {
        part: {"ms_per_micro_step": numbers["seconds"] * 1000 / micro_steps, "share": numbers["seconds"] / train_s}
        for part, numbers in sorted(inside.items(), key=lambda item: -item[1]["seconds"])
    }
    unattributed = train_s - sum(numbers["seconds"] for numbers in inside.values())
    rows["unattributed (train_runtime_s less the parts)"] = {
        "ms_per_micro_step": unattributed * 1000 / micro_steps,
        "share": unattributed / train_s,
    }
    return rows


def grouped(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The parts summed per GROUPS entry (each part in the first group one of whose prefixes it starts with)."""
    groups = {group: {"ms_per_micro_step": 0.0, "share": 0.0} for group in GROUPS}
    for part, row in rows.items():
        group = next(group for group, prefixes in GROUPS.items() if part.startswith(prefixes))
        for key in ("ms_per_micro_step", "share"):
            groups[group][key] += row[key]
    return groups


def print_profiles(profiles: dict[str, dict[str, Any]]) -> None:
    names = list(profiles)
    tables = {name: profile_rows(run["parts"], run["train_s"], run["micro_steps"]) for name, run in profiles.items()}
    print("\nwhere the time goes, per micro-step (each part's own time; the fastest profiled run)")
    for title, shown in (("part", tables), ("summed", {name: grouped(table) for name, table in tables.items()})):
        print(f"\n{title:<66}" + "".join(f"{name + ' ms':>13}{'share':>7}" for name in names))
        for part in dict.fromkeys(part for table in shown.values() for part in table):
            cells = ""
            for name in names:
                row = shown[name].get(part)
                cells += f"{row['ms_per_micro_step']:>13.2f}{row['share']:>7.1%}" if row else f"{'–':>13}{'':>7}"
            print(f"{part:<66}{cells}")
    totals = "".join(
        f"{profiles[name]['train_s'] * 1000 / profiles[name]['micro_steps']:>13.2f}{'':>7}" for name in names
    )
    print(f"{'train_runtime_s per micro-step':<66}{totals}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant, interleaved; the fastest counts")
    parser.add_argument("--profile-repeats", type=int, default=3, help="timed runs per trainer (0: no profile)")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps (the quickstart's 60)")
    parser.add_argument(
        "--run-timeout", type=float, default=60, help="seconds a training process may take before it is stopped"
    )
    parser.add_argument("--source", type=Path, help="another checkout of ftc to train with (a git worktree)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_step.json")
    # the training process this script starts
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trainer", choices=("trl", "plain"), default="trl", help=argparse.SUPPRESS)
    parser.add_argument("--timed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if sys.path[0] == str(Path(__file__).resolve().parent):
            sys.path.pop(0)  # this folder's scripts are no modules of the training process
        # ftc comes from the PYTHONPATH the parent set, so this checkout is not put first here
        sys.exit(train_in_this_process(args.child, args.report, args.trainer, args.timed))

    sys.path.insert(0, str(ROOT))
    from benchmarks._report import write_report
    from ftc.quickstart.workspace import write_quickstart

    source = args.source.resolve() if args.source else None
    variants = tuple(variant for variant in VARIANTS if not (source and variant.loss_head))
    runs: dict[str, list[dict | None]] = {variant.name: [] for variant in variants}
    profiled: dict[str, list[dict | None]] = {variant.name: [] for variant in PROFILED}
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "quickstart"
        specs = write_variant_specs(workspace, write_quickstart(workspace, steps=args.steps), variants)
        trained_ftc = source or ROOT
        env = child_environment(trained_ftc, Path(folder) / "cache")
        for _ in range(args.repeats):  # interleaved, so a busy spell on a shared machine hits every variant
            for variant in variants:
                spec = specs[variant.name]
                runs[variant.name].append(train_once(variant, spec, env, trained_ftc, False, args.run_timeout))
        for _ in range(args.profile_repeats):
            for variant in PROFILED:
                spec = specs[variant.name]
                profiled[variant.name].append(train_once(variant, spec, env, trained_ftc, True, args.run_timeout))
    best = {name: fastest(name, tries) for name, tries in runs.items()}
    profiles = {name: fastest(name, tries) for name, tries in profiled.items() if tries}

    threads = best["unpacked"]["torch_threads"]
    shown_source = source_record(source)
    print(
        f"quickstart LoRA SFT, {args.steps} steps; torch threads {threads} of {os.cpu_count()} CPUs; "
        f"best of {args.repeats}; ftc from {shown_source['ftc']} ({(shown_source['commit'] or '?')[:10]})"
    )
    print(
        f"{'variant':<10}{'steps':>6}{'micro':>7}{'train s':>9}{'real tokens':>13}{'padding':>9}"
        f"{'real tok/s':>12}{'last loss':>11}  all train s"
    )
    for name, run in best.items():
        print(
            f"{name:<10}{run['steps']:>6}{run['micro_steps']:>7}{run['train_s']:>9.2f}{run['real_tokens']:>13}"
            f"{run['padding']:>9.0%}{run['real_tokens_per_s']:>12.0f}{run['last_loss']:>11.3f}  "
            + " ".join("–" if seconds is None else f"{seconds:.2f}" for seconds in run["all_train_s"])
        )
    if profiles:
        print_profiles(profiles)

    write_report(
        args.out,
        "train_step",
        source=shown_source,
        steps=args.steps,
        torch_threads=threads,
        repeats=args.repeats,
        run_timeout_s=args.run_timeout,
        variants={
            variant.name: {"packing": variant.packing, "trainer": variant.trainer, "loss_head": variant.loss_head}
            for variant in variants
        },
        runs=best,
        profile_repeats=args.profile_repeats,
        profiles={
            name: {
                **run,
                "parts_per_micro_step": profile_rows(run["parts"], run["train_s"], run["micro_steps"]),
                "groups_per_micro_step": grouped(profile_rows(run["parts"], run["train_s"], run["micro_steps"])),
            }
            for name, run in profiles.items()
        },
    )


if __name__ == "__main__":
    main()
