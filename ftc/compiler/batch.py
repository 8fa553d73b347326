"""Micro-batch and gradient accumulation: micro × data-parallel world × accumulation = global batch."""

from __future__ import annotations

from ftc.compiler.plan import Decision
from ftc.errors import FtcError


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _nearest_multiples(target: int, step: int) -> list[int]:
    below = (target // step) * step
    return sorted({m for m in (below, below + step) if m >= step})


def split_batch(global_batch: int, world: int, ceiling: int, requested_micro: int | None) -> tuple[Decision, Decision]:
    """Choose (micro_batch_size, gradient_accumulation_steps) so that they make up the global batch."""
    if global_batch % world:
        valid = ", ".join(map(str, _nearest_multiples(global_batch, world)))
        raise FtcError(
            f"train.global_batch_size {global_batch} does not divide across {world} data-parallel processes",
            f"use a multiple of {world}, e.g. {valid}",
        )
    per_process = global_batch // world
    if requested_micro is not None:
        if per_process % requested_micro:
            micro_options = [d for d in divisors(per_process) if abs(d - requested_micro) <= requested_micro]
            batches = _nearest_multiples(global_batch, requested_micro * world)
            raise FtcError(
                f"train.micro_batch_size {requested_micro} × {world} process(es) does not divide "
                f"train.global_batch_size {global_batch}",
                f"micro_batch_size {' or '.join(map(str, micro_options[-2:]))}, "
                f"or global_batch_size {' or '.join(map(str, batches))}",
            )
        micro = Decision(requested_micro, "set in the spec (train.micro_batch_size)")
    else:
        chosen = max(d for d in divisors(per_process) if d <= ceiling)
        micro = Decision(
            chosen, f"largest divisor of {per_process} examples per process within this hardware's cap of {ceiling}"
        )
    steps = per_process // micro.value
    accumulation = Decision(
        steps,
        f"{micro.value} × {world} process{'es' if world > 1 else ''} × {steps} = {global_batch}, the global batch",
    )
    return micro, accumulation
