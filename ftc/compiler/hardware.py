"""The hardware registry: one small record per accelerator, and `8xNAME` parsing.

Only the CPU is registered so far; accelerators join with the memory-aware compiler, one record
each, without touching the planner's callers.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ftc.compiler.plan import HardwareRef
from ftc.errors import FtcError


@dataclass(frozen=True)
class Hardware:
    name: str
    backend: str  # cpu | cuda | npu
    memory_gib: float | None  # per device; None where the host's RAM is the limit
    bf16: bool
    fp16: bool
    max_micro_batch: int  # a ceiling where larger micro-batches stop paying off


HARDWARE: dict[str, Hardware] = {
    record.name: record
    for record in (
        # Many-core CPUs gain nothing from micro-batches past ~8: matmuls are already compute-bound.
        Hardware(name="cpu", backend="cpu", memory_gib=None, bf16=True, fp16=False, max_micro_batch=8),
    )
}

_COUNTED = re.compile(r"^(?:(\d+)\s*[xX×]\s*)?(.+)$")


def parse_hardware(text: str, nodes: int = 1) -> HardwareRef:
    """'8xH100-80GB' → HardwareRef(name='H100-80GB', devices_per_node=8, nodes=nodes)."""
    match = _COUNTED.match(text.strip())
    count, name = (int(match[1]) if match and match[1] else 1), (match[2] if match else text)
    by_lower = {key.lower(): key for key in HARDWARE}
    if name.lower() not in by_lower:
        close = difflib.get_close_matches(name, list(HARDWARE), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known hardware: {', '.join(HARDWARE)}"
        raise FtcError(f"unknown hardware '{name}'", hint)
    if count < 1 or nodes < 1:
        raise FtcError(f"hardware '{text}' × {nodes} nodes has no devices", "use a count and --nodes of at least 1")
    return HardwareRef(by_lower[name.lower()], count, nodes)


def hardware_record(ref: HardwareRef) -> Hardware:
    return HARDWARE[ref.name]
