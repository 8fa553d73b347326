"""The hardware registry: one small record per accelerator with the names people write for it, and `8xNAME` parsing.

Memory is what the device reports as its total (nvidia-smi's memory.total), in GiB; the planner
subtracts the runtime context itself. Peak TFLOPs are dense bf16/fp16 tensor throughput (no
sparsity), the figure a time estimate scales by a stated utilisation. Aliases are accepted wherever a
name is, but a plan (and its lockfile) always records the record's own name.
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
    backend: str  # names its record in ftc.devices.backends: cpu | cuda | npu
    memory_gib: float | None  # per device; None where the host's RAM is the limit
    bf16: bool
    fp16: bool
    fp8: bool
    flash_attention: bool  # a fused attention kernel that keeps no seq × seq scores
    peak_tflops: float | None  # dense bf16/fp16 tensor throughput per device
    link: str | None  # intra-node interconnect: nvlink | pcie | hccs
    context_gib: float  # what the runtime itself holds before the first tensor (CUDA/NPU context, kernels)
    max_micro_batch: int = 64  # a ceiling past which larger micro-batches stop paying off
    aliases: tuple[str, ...] = ()  # what people write for it ("H100", "910B"); each names one record only


def _cuda(name, memory_gib, *, bf16=True, fp8=False, flash=True, tflops, link="pcie", aliases=()) -> Hardware:
    # A CUDA context with cuBLAS/cuDNN workspaces takes ~0.5 GiB before the first tensor.
    return Hardware(name, "cuda", memory_gib, bf16, True, fp8, flash, tflops, link, context_gib=0.5, aliases=aliases)


def _npu(name, memory_gib, *, tflops, aliases=()) -> Hardware:
    # Ascend: bf16 and fp16 but no fp8, a fused attention kernel, HCCS between a node's chips; the CANN
    # runtime holds more than a CUDA context before the first tensor.
    return Hardware(name, "npu", memory_gib, True, True, False, True, tflops, "hccs", context_gib=1.0, aliases=aliases)


HARDWARE: dict[str, Hardware] = {
    record.name: record
    for record in (
        _cuda("H200-141GB", 140.4, fp8=True, tflops=989.0, link="nvlink", aliases=("H200",)),
        _cuda("H100-80GB", 79.6, fp8=True, tflops=989.0, link="nvlink", aliases=("H100",)),
        # A bare "A100" is the 80 GB card, the one clouds mostly rent; the 40 GB one goes by its full name.
        _cuda("A100-80GB", 80.0, tflops=312.0, link="nvlink", aliases=("A100",)),
        _cuda("A100-40GB", 40.0, tflops=312.0, link="nvlink"),
        _cuda("L40S-48GB", 45.0, fp8=True, tflops=362.0, aliases=("L40S",)),
        _cuda("A10G-24GB", 22.5, tflops=70.0, aliases=("A10G",)),
        _cuda("L4-24GB", 22.5, fp8=True, tflops=121.0, aliases=("L4",)),
        _cuda("RTX4090-24GB", 24.0, fp8=True, tflops=165.0, aliases=("RTX4090", "4090")),
        _cuda("RTX3090-24GB", 24.0, tflops=71.0, aliases=("RTX3090", "3090")),
        # Volta and Turing: no bf16, and FlashAttention-2 needs Ampere or newer.
        _cuda("V100-32GB", 31.7, bf16=False, flash=False, tflops=125.0, link="nvlink", aliases=("V100",)),
        _cuda("T4-16GB", 15.0, bf16=False, flash=False, tflops=65.0, aliases=("T4",)),
        _npu("Ascend910B-64GB", 64.0, tflops=313.0, aliases=("910B", "910B-64GB", "Ascend910B")),
        # Many-core CPUs gain nothing from micro-batches past ~8: matmuls are already compute-bound.
        Hardware("cpu", "cpu", None, True, False, False, False, None, None, context_gib=0.0, max_micro_batch=8),
    )
}

_COUNTED = re.compile(r"^(?:(\d+)\s*[xX×]\s*)?(.+)$")


def hardware_key(name: str) -> str:
    """How names are compared: case, spaces, underscores and hyphens aside ("a100 80gb" is A100-80GB)."""
    return re.sub(r"[\s_-]", "", name).lower()


# Every name and alias → the record's own name, which is what plans record.
_BY_KEY = {
    hardware_key(spelling): record.name for record in HARDWARE.values() for spelling in (record.name, *record.aliases)
}


def described_names() -> str:
    """'H200-141GB (H200), ..., cpu': every record's name with its aliases, for help and hints."""
    return ", ".join(
        f"{record.name} ({', '.join(record.aliases)})" if record.aliases else record.name
        for record in HARDWARE.values()
    )


def parse_hardware(text: str, nodes: int = 1) -> HardwareRef:
    """'8xH100-80GB' → HardwareRef(name='H100-80GB', devices_per_node=8, nodes=nodes)."""
    match = _COUNTED.match(text.strip())
    count, name = (int(match[1]) if match and match[1] else 1), (match[2] if match else text)
    key = hardware_key(name)
    if key not in _BY_KEY:
        # Compared as keys, so a near miss of an alias ("H10") suggests the record it names; the cutoff is above
        # difflib's 0.6 because short aliases ("3090") lie that close to unrelated names ("MI300X").
        close = difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=0.7)
        hint = f"did you mean '{_BY_KEY[close[0]]}'?" if close else f"known hardware: {described_names()}"
        raise FtcError(f"unknown hardware '{name}'", hint)
    if count < 1 or nodes < 1:
        raise FtcError(f"hardware '{text}' × {nodes} nodes has no devices", "use a count and --nodes of at least 1")
    return HardwareRef(_BY_KEY[key], count, nodes)


def hardware_record(ref: HardwareRef) -> Hardware:
    return HARDWARE[ref.name]
