"""What the run really held at its peak, recorded beside what the plan estimated.

On an accelerator the caching allocator's own peaks, allocated (live tensors) and reserved (what it
took from the driver), are the numbers the plan's estimate predicts, the runtime's context aside; the
largest over the ranks is kept. On the CPU, where the plan's device is host memory, the process's
peak resident set is recorded instead; it also holds the libraries' code, which the plan does not count.
"""

from __future__ import annotations

from typing import Any

from ftc.compiler.plan import Plan
from ftc.devices.backends import BACKENDS
from ftc.devices.torch_devices import torch_devices
from ftc.runtime.distributed.collectives import gather_objects

GIB = 1024**3


def measured_peak(plan: Plan) -> dict[str, float]:
    """This process's peaks in GiB: {"allocated_gib", "reserved_gib"} on cuda/npu, {"host_rss_gib"} on the CPU."""
    backend = BACKENDS[plan.backend.value]
    if backend.peaks is None:
        import resource

        return {"host_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}  # KiB on Linux
    devices = torch_devices(backend)  # torch.cuda, torch.npu
    allocated, reserved = getattr(devices, backend.peaks.allocated)(), getattr(devices, backend.peaks.reserved)()
    return {"allocated_gib": allocated / GIB, "reserved_gib": reserved / GIB}


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
