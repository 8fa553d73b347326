"""Micro-batch and gradient accumulation: micro × data-parallel world × accumulation = global batch."""

from __future__ import annotations

from ftc.compiler.plan import Decision
from ftc.errors import FtcError
from ftc.stages import STAGES


def least_micro_batch(stage: str) -> int:
    """Some stages cannot learn from one example per micro-batch (KTO's KL term reads the others')."""
    return STAGES[stage].least_micro_batch


def check_least_per_process(stage: str, global_batch: int, world: int) -> None:
    least = least_micro_batch(stage)
    if global_batch // world < least:
        raise FtcError(
            f"train.stage = '{stage}' needs at least {least} examples per micro-batch, but "
            f"train.global_batch_size {global_batch} over {world} process(es) gives each {global_batch // world}",
            f"raise train.global_batch_size to {least * world} or more",
        )


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _nearest_multiples(target: int, step: int) -> list[int]:
    below = (target // step) * step
    return sorted({m for m in (below, below + step) if m >= step})


def per_process_batch(global_batch: int, world: int) -> int:
    if global_batch % world:
        valid = ", ".join(map(str, _nearest_multiples(global_batch, world)))
        raise FtcError(
            f"train.global_batch_size {global_batch} does not divide across {world} data-parallel processes",
            f"use a multiple of {world}, e.g. {valid}",
        )
    return global_batch // world


def check_requested_micro(global_batch: int, world: int, requested: int) -> None:
    if (global_batch // world) % requested:
        micro_options = [d for d in divisors(global_batch // world) if abs(d - requested) <= requested]
        batches = _nearest_multiples(global_batch, requested * world)
        raise FtcError(
            f"train.micro_batch_size {requested} × {world} process(es) does not divide "
            f"train.global_batch_size {global_batch}",
            f"micro_batch_size {' or '.join(map(str, micro_options[-2:]))}, "
            f"or global_batch_size {' or '.join(map(str, batches))}",
        )


def accumulation(micro: int, world: int, global_batch: int) -> Decision:
    steps = global_batch // (micro * world)
    processes = f"{world} process{'es' if world > 1 else ''}"
    return Decision(steps, f"{micro} × {processes} × {steps} = {global_batch}, the global batch")


def split_batch(
    global_batch: int, world: int, ceiling: int, requested_micro: int | None, least: int = 1
) -> tuple[Decision, Decision]:
    """Choose (micro_batch_size, gradient_accumulation_steps) without a memory limit, under a speed ceiling;
    never below `least` (the caller has checked that each process sees that many examples)."""
    per_process = per_process_batch(global_batch, world)
    if requested_micro is not None:
        check_requested_micro(global_batch, world, requested_micro)
        micro = Decision(requested_micro, "set in the spec (train.micro_batch_size)")
    else:
        allowed = [d for d in divisors(per_process) if d >= least]
        within = [d for d in allowed if d <= ceiling]
        chosen = max(within) if within else min(allowed)
        micro = Decision(
            chosen, f"largest divisor of {per_process} examples per process within this hardware's cap of {ceiling}"
        )
    return micro, accumulation(micro.value, world, global_batch)
