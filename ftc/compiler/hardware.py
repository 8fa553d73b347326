"""The hardware registry: one small record per accelerator, and `8xNAME` parsing.

Memory is what the device reports as its total (nvidia-smi's memory.total), in GiB; the planner
subtracts the runtime context itself. Peak TFLOPs are dense bf16/fp16 tensor throughput (no
sparsity), the figure a time estimate scales by a stated utilisation.
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
    fp8: bool
    flash_attention: bool  # a fused attention kernel that keeps no seq × seq scores
    peak_tflops: float | None  # dense bf16/fp16 tensor throughput per device
    link: str | None  # intra-node interconnect: nvlink | pcie | hccs
    context_gib: float  # what the runtime itself holds before the first tensor (CUDA/NPU context, kernels)
    max_micro_batch: int = 64  # a ceiling past which larger micro-batches stop paying off


def _cuda(name, memory_gib, *, bf16=True, fp8=False, flash=True, tflops, link="pcie") -> Hardware:
    # A CUDA context with cuBLAS/cuDNN workspaces takes ~0.5 GiB before the first tensor.
    return Hardware(name, "cuda", memory_gib, bf16, True, fp8, flash, tflops, link, context_gib=0.5)


HARDWARE: dict[str, Hardware] = {
    record.name: record
    for record in (
        _cuda("H200-141GB", 140.4, fp8=True, tflops=989.0, link="nvlink"),
        _cuda("H100-80GB", 79.6, fp8=True, tflops=989.0, link="nvlink"),
        _cuda("A100-80GB", 80.0, tflops=312.0, link="nvlink"),
        _cuda("A100-40GB", 40.0, tflops=312.0, link="nvlink"),
        _cuda("L40S-48GB", 45.0, fp8=True, tflops=362.0),
        _cuda("A10G-24GB", 22.5, tflops=70.0),
        _cuda("L4-24GB", 22.5, fp8=True, tflops=121.0),
        _cuda("RTX4090-24GB", 24.0, fp8=True, tflops=165.0),
        _cuda("RTX3090-24GB", 24.0, tflops=71.0),
        # Volta and Turing: no bf16, and FlashAttention-2 needs Ampere or newer.
        _cuda("V100-32GB", 31.7, bf16=False, flash=False, tflops=125.0, link="nvlink"),
        _cuda("T4-16GB", 15.0, bf16=False, flash=False, tflops=65.0),
        Hardware("Ascend910B-64GB", "npu", 64.0, True, True, False, True, 313.0, "hccs", context_gib=1.0),
        # Many-core CPUs gain nothing from micro-batches past ~8: matmuls are already compute-bound.
        Hardware("cpu", "cpu", None, True, False, False, False, None, None, context_gib=0.0, max_micro_batch=8),
    )
}

_COUNTED = re.compile(r"^(?:(\d+)\s*[xX×]\s*)?(.+)$")


def _key(name: str) -> str:
    return re.sub(r"[\s_]", "", name).lower()


_BY_KEY = {_key(name): name for name in HARDWARE} | {_key("Ascend 910B-64GB"): "Ascend910B-64GB"}


def parse_hardware(text: str, nodes: int = 1) -> HardwareRef:
    """'8xH100-80GB' → HardwareRef(name='H100-80GB', devices_per_node=8, nodes=nodes)."""
    match = _COUNTED.match(text.strip())
    count, name = (int(match[1]) if match and match[1] else 1), (match[2] if match else text)
    if _key(name) not in _BY_KEY:
        close = difflib.get_close_matches(name, list(HARDWARE), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known hardware: {', '.join(HARDWARE)}"
        raise FtcError(f"unknown hardware '{name}'", hint)
    if count < 1 or nodes < 1:
        raise FtcError(f"hardware '{text}' × {nodes} nodes has no devices", "use a count and --nodes of at least 1")
    return HardwareRef(_BY_KEY[_key(name)], count, nodes)


def hardware_record(ref: HardwareRef) -> Hardware:
    return HARDWARE[ref.name]
