"""What the run really held at its peak, recorded beside what the plan estimated.

On an accelerator the caching allocator's own peaks, allocated (live tensors) and reserved (what it
took from the driver), are the numbers the plan's estimate predicts, the runtime's context aside; the
largest over the ranks is kept. On the CPU, where the plan's device is host memory, the process's
peak resident set is recorded instead; it also holds the libraries' code, which the plan does not count.
"""

from __future__ import annotations

from typing import Any

from ftc.compiler.plan import Plan
from ftc.runtime.distributed.collectives import gather_objects

GIB = 1024**3


def measured_peak(plan: Plan) -> dict[str, float]:
    """This process's peaks in GiB: {"allocated_gib", "reserved_gib"} on cuda/npu, {"host_rss_gib"} on the CPU."""
    backend = plan.backend.value
    if backend == "cpu":
        import resource

        return {"host_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}  # KiB on Linux
    import torch

    device = getattr(torch, backend)  # torch.cuda, or torch.npu once torch_npu is imported
    return {"allocated_gib": device.max_memory_allocated() / GIB, "reserved_gib": device.max_memory_reserved() / GIB}


def peak_memory(plan: Plan) -> dict[str, Any]:
    """The largest peaks over the ranks (every rank calls this), with the plan's estimate for the same terms."""
    by_rank = gather_objects(measured_peak(plan))
    found: dict[str, Any] = {name: max(peaks[name] for peaks in by_rank) for name in by_rank[0]}
    estimate = plan.memory
    if estimate is not None:
        context = estimate.terms.get("context", 0.0)
        if "allocated_gib" in found:  # the allocator sees no context: compare like with like
            found["planned_allocated_gib"] = estimate.allocated_gib - context
            found["planned_reserved_gib"] = estimate.reserved_gib - context
        else:
            found["planned_host_gib"] = estimate.host_gib
    return found


def memory_line(memory: dict[str, Any]) -> str | None:
    """One line for the summary: measured, and beside it the plan's estimate and how far off it was."""
    if "allocated_gib" in memory:
        allocated, reserved = memory["allocated_gib"], memory["reserved_gib"]
        line = f"peak memory per device: {allocated:.2f} GiB allocated, {reserved:.2f} reserved"
        if "planned_allocated_gib" in memory:
            planned = memory["planned_allocated_gib"]
            off = f" ({(planned - allocated) / allocated:+.0%})" if allocated else ""
            line += f"; the plan estimated {planned:.2f} allocated{off}, {memory['planned_reserved_gib']:.2f} reserved"
        return line
    if "host_rss_gib" in memory:
        line = f"peak host memory (process RSS, libraries included): {memory['host_rss_gib']:.2f} GiB"
        if "planned_host_gib" in memory:
            line += f"; the plan estimated {memory['planned_host_gib']:.2f} GiB for training state"
        return line
    return None
