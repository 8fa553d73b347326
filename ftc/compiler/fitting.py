"""Fitting a run onto devices: the least sharding that fits with headroom, then the largest micro-batch.

Candidates go from cheapest to most intrusive: plain data parallelism, then ZeRO stages that shard
optimizer states, gradients and parameters, then offload to host memory. Each is tried without
gradient checkpointing first (it costs a recomputed forward) and with it second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ftc.compiler.batch import divisors
from ftc.compiler.memory.estimate import MemoryInputs, estimate_memory
from ftc.compiler.plan import MemoryEstimate
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.stages import STAGES

# Kept free on every device: allocator fragmentation and kernels' scratch space vary run to run.
HEADROOM = 0.10

Estimator = Callable[[MemoryInputs], MemoryEstimate]


@dataclass(frozen=True)
class Layout:
    strategy: str  # single | ddp | zero1 | zero2 | zero3 | fsdp
    offload: str  # none | optimizer | optimizer+params


def candidate_layouts(
    world: int, method: str, stage: str, optimizer: str = "adamw", pure_bf16: bool = False
) -> list[Layout]:
    """The layouts to try, least sharded first, that the stage, the method and the optimizer run under.

    `pure_bf16` (train.pure_bf16) keeps to replicas: DeepSpeed's and FSDP's mixed precision keep an fp32 master copy
    of their own."""
    allowed = OPTIMIZERS[optimizer].strategies
    if pure_bf16:
        allowed = tuple(strategy for strategy in allowed if strategy in ("single", "ddp"))
    return [layout for layout in _layouts(world, method, stage) if layout.strategy in allowed]


def _layouts(world: int, method: str, stage: str) -> list[Layout]:
    if STAGES[stage].replicas_only:  # a replica per device or nothing: the plan says so when it does not fit
        return [Layout("single" if world == 1 else "ddp", "none")]
    if world == 1:
        # One device: ZeRO's offload still helps (optimizer states, then parameters, on the host).
        layouts = [Layout("single", "none"), Layout("zero2", "optimizer"), Layout("zero3", "optimizer+params")]
    else:
        layouts = [Layout("ddp", "none"), Layout("zero1", "none"), Layout("zero2", "none"), Layout("zero3", "none")]
        layouts += [Layout("zero2", "optimizer"), Layout("zero3", "optimizer"), Layout("zero3", "optimizer+params")]
    if METHODS[method].quantizes:
        # bitsandbytes weights cannot be ZeRO-3 partitioned: FSDP (QLoRA with a quant storage dtype equal to
        # the compute dtype) takes its place.
        layouts = [Layout("fsdp", layout.offload) if layout.strategy == "zero3" else layout for layout in layouts]
    return layouts


def budget_gib(capacity_gib: float) -> float:
    return capacity_gib * (1 - HEADROOM)


@dataclass(frozen=True)
class Fit:
    layout: Layout
    gradient_checkpointing: bool
    estimate: MemoryEstimate  # at the micro-batch it was fitted at
    micro: int = 1


def first_fit(
    base: MemoryInputs,
    layouts: list[Layout],
    checkpointing_choices: list[bool],
    budget: float,
    estimate: Estimator = estimate_memory,
    micro: int = 1,
) -> Fit | None:
    """The first layout and checkpointing choice where `micro` examples per micro-batch fit (1 unless the run
    cannot choose its micro-batch)."""
    for layout in layouts:
        for checkpointing in checkpointing_choices:
            inputs = replace(
                base,
                strategy=layout.strategy,
                offload=layout.offload,
                gradient_checkpointing=checkpointing,
                micro_batch_size=micro,
            )
            found = estimate(inputs)
            if found.reserved_gib <= budget:
                return Fit(layout, checkpointing, found, micro)
    return None


def largest_dividing_micro_batch(
    inputs: MemoryInputs, budget: float, per_process: int, ceiling: int, estimate: Estimator = estimate_memory
) -> int:
    """The largest micro-batch that fits and divides the examples each process sees per step (0: none fits)."""
    for micro in sorted((d for d in divisors(per_process) if d <= ceiling), reverse=True):
        if estimate(replace(inputs, micro_batch_size=micro)).reserved_gib <= budget:
            return micro
    return 0


def largest_fitting(fits: Callable[[int], bool], ceiling: int) -> int:
    """The largest n in 1..ceiling with fits(n), for fits that stay false once false; 0 if none."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= ceiling and fits(high):
        low, high = high, high * 2
    high = min(high, ceiling + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def limits(fitted: MemoryInputs, budget: float, estimate: Estimator = estimate_memory) -> dict[str, int]:
    """What users ask as often as "will it fit?": how large a micro-batch, how long a context.

    `max_micro_batch_size` and `max_cutoff_len` are under the plan's own checkpointing decision. Both are
    also given with and without gradient checkpointing: a card roomy enough to skip checkpointing at this
    cutoff_len would otherwise show a shorter limit than a smaller card that has to checkpoint.
    """
    found = {
        checkpointing: _limits_at(replace(fitted, gradient_checkpointing=checkpointing), budget, estimate)
        for checkpointing in (False, True)
    }
    variants = {
        f"{key}_{'with' if checkpointing else 'without'}_checkpointing": value
        for checkpointing in (True, False)
        for key, value in found[checkpointing].items()
    }
    return found[fitted.gradient_checkpointing] | variants


def longest_cutoff_len(inputs: MemoryInputs, budget: float, estimate: Estimator = estimate_memory) -> int:
    """The longest context that fits at micro-batch 1 under the inputs' own checkpointing (0: none), and that the
    model's positions reach (as model.rope_scaling leaves them). With images, the text beside each row's image:
    the row is this many tokens and the image's."""
    image = inputs.images.tokens if inputs.images is not None else 0

    def length_fits(tokens: int) -> bool:
        return estimate(replace(inputs, micro_batch_size=1, seq_len=tokens + image)).reserved_gib <= budget

    return largest_fitting(length_fits, (inputs.arch.max_position_embeddings or 1_048_576) - image)


def _limits_at(inputs: MemoryInputs, budget: float, estimate: Estimator) -> dict[str, int]:
    def micro_fits(micro: int) -> bool:
        return estimate(replace(inputs, micro_batch_size=micro)).reserved_gib <= budget

    return {
        "max_micro_batch_size": largest_fitting(micro_fits, 65_536),
        "max_cutoff_len": longest_cutoff_len(inputs, budget, estimate),
    }
