"""The run's measured peak memory as the summary and `ftc report` show it, beside what the plan estimated.

The runtime measures it (`ftc.runtime.distributed.peak_memory`) and records it in metrics.json; this reads
that record, without torch.
"""

from __future__ import annotations

from typing import Any


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
