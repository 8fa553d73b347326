"""Which hardware is here: nvidia-smi, then torch_npu, then torch.cuda, else the CPU. The I/O edge of planning.

How each backend is found is its record's `detection` (ftc.devices.backends). Each probe is cheap where
its device is absent: nothing imports torch on a machine without a GPU driver, so `ftc plan` stays fast
on laptops and CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ftc.compiler.hardware import HARDWARE
from ftc.compiler.plan import HardwareRef
from ftc.devices.backends import BACKENDS, Backend
from ftc.devices.torch_devices import torch_devices
from ftc.errors import FtcError

# Device names as drivers report them → registry names; several entries share a family and the
# reported memory picks between them (A100 40 vs 80 GB).
_NAME_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"\bH200\b", ("H200-141GB",)),
    (r"\bH100\b", ("H100-80GB",)),
    (r"\bA100\b", ("A100-80GB", "A100-40GB")),
    (r"\bL40S\b", ("L40S-48GB",)),
    (r"\bA10G\b", ("A10G-24GB",)),
    (r"\bL4\b", ("L4-24GB",)),
    (r"\bRTX 4090\b", ("RTX4090-24GB",)),
    (r"\bRTX 3090\b", ("RTX3090-24GB",)),
    (r"\bV100\b", ("V100-32GB",)),
    (r"\bT4\b", ("T4-16GB",)),
    (r"910B", ("Ascend910B-64GB",)),
)


@dataclass(frozen=True)
class Detected:
    hardware: HardwareRef
    how: str  # shown beside the plan, so a surprising detection is visible


def match_device(name: str, memory_gib: float) -> str:
    """The registry name for a device as its driver reports it (name and total memory)."""
    for pattern, candidates in _NAME_PATTERNS:
        if re.search(pattern, name, re.IGNORECASE):
            return min(candidates, key=lambda candidate: abs(HARDWARE[candidate].memory_gib - memory_gib))
    raise FtcError(
        f"detected {name!r} ({memory_gib:.0f} GiB), which is not in ftc's hardware registry",
        f"name the closest with --hardware, one of: {', '.join(HARDWARE)}",
    )


def parse_nvidia_smi(output: str) -> tuple[str, int]:
    """`nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits` → (registry name, count)."""
    devices = [line.rsplit(",", 1) for line in output.strip().splitlines() if line.strip()]
    if not devices:
        raise FtcError("nvidia-smi lists no GPU", "check the driver, or name the hardware with --hardware")
    names = {match_device(name.strip(), float(mib) / 1024) for name, mib in devices}
    if len(names) > 1:
        raise FtcError(f"this machine mixes GPUs ({', '.join(sorted(names))})", "name one with --hardware NxNAME")
    return names.pop(), len(devices)


def detect_hardware(nodes: int = 1) -> Detected:
    detected = [backend for backend in BACKENDS.values() if backend.detection is not None]
    # A driver's own listing answers without torch, so every backend's is tried before torch is asked.
    for backend in detected:
        listing = backend.detection.listing
        if listing and shutil.which(listing[0]):
            result = subprocess.run(list(listing), capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                name, count = parse_nvidia_smi(result.stdout)
                return Detected(HardwareRef(name, count, nodes), listing[0])
    for backend in detected:
        if _present(backend):
            return _detect_with_torch(backend, nodes)
    return Detected(HardwareRef("cpu", 1, nodes), "no GPU or NPU driver found")


def _present(backend: Backend) -> bool:
    """The backend's plugin is installed or its driver's files exist: torch is worth asking."""
    signs = backend.detection
    if signs.installed is not None and importlib.util.find_spec(signs.installed) is not None:
        return True
    return any(os.path.exists(path) for path in signs.driver_files)


def _detect_with_torch(backend: Backend, nodes: int) -> Detected:
    devices = torch_devices(backend)
    if not devices.is_available() or devices.device_count() == 0:
        raise FtcError(
            f"a {backend.name} driver is present but torch sees no device", "name the hardware with --hardware"
        )
    properties = devices.get_device_properties(0)
    name = match_device(properties.name, properties.total_memory / 2**30)
    return Detected(HardwareRef(name, devices.device_count(), nodes), backend.device_module)
