"""The few collectives a training loop of our own (ppo's) needs beside DDP: with one process, each is the identity.

Small Python objects travel through `all_gather_object`, which works over every backend (gloo, NCCL, HCCL)
without choosing a device for a tensor; they are a handful of numbers once per step.
"""

from __future__ import annotations

from typing import Any


def _several_processes() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    if not _several_processes():
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each number averaged over the ranks (which hold equal shares of the batch)."""
    gathered = gather_objects(values)
    return {name: sum(rank_values[name] for rank_values in gathered) / len(gathered) for name in values}


def any_rank(flag: bool) -> bool:
    """True on every rank if it is true on one: a stop signal that reached one rank stops them all together."""
    return any(gather_objects(flag))


def barrier() -> None:
    if _several_processes():
        import torch.distributed as dist

        dist.barrier()
