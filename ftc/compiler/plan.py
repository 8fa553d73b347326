"""The plan: every hardware-dependent setting of a run, each a value with the reason it was chosen.

`Plan.to_dict()` is a contract that scripts rely on (`ftc plan --format json`) and that the
runtime reads back from plan.json: top-level keys name the decisions' values, `reasons` says why
each was chosen, and `memory`, `time` and `limits` hold the estimates where the compiler made them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Decision:
    value: Any
    reason: str


@dataclass(frozen=True)
class HardwareRef:
    """What the plan was made for: an accelerator name, devices per node and nodes."""

    name: str
    devices_per_node: int = 1
    nodes: int = 1

    @property
    def world_size(self) -> int:
        return self.devices_per_node * self.nodes

    def label(self) -> str:
        return f"{self.devices_per_node}x{self.name}" + (f" × {self.nodes} nodes" if self.nodes > 1 else "")


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-device memory at the training peak, in GiB, broken into the terms that make it up."""

    terms: dict[str, float]  # term name → GiB on each device (allocated tensors)
    allocated_gib: float  # the peak of live tensors (torch.cuda.max_memory_allocated)
    reserved_gib: float  # what the allocator holds at that peak (what nvidia-smi shows, what OOMs)
    capacity_gib: float | None  # the device's memory; None on the CPU, where host RAM is the limit
    host_gib: float  # host RAM the run needs (loading, offloaded states)
    assumptions: tuple[str, ...] = ()  # what the estimate took for granted (padding, attention kernel, ...)


@dataclass(frozen=True)
class TimeEstimate:
    tokens_per_second: float  # across all devices
    hours: float | None  # wall time of the whole run; None where its length is in epochs of unread data
    gpu_hours: float | None
    utilisation: float  # the fraction of peak FLOPs assumed


@dataclass(frozen=True)
class Plan:
    hardware: HardwareRef
    backend: Decision  # cpu | cuda | npu
    precision: Decision  # fp32 | bf16 | fp16
    strategy: Decision  # single | ddp | zero1 | zero2 | zero3 | fsdp
    world_size: Decision  # data-parallel processes in all
    micro_batch_size: Decision  # examples per device per forward pass
    gradient_accumulation_steps: Decision
    gradient_checkpointing: Decision
    quantization_bits: Decision = Decision(None, "no quantization: the method is not qlora")  # None | 2 | 3 | 4 | 8
    # None | a ftc.quantizers name: the library on-the-fly, or the checkpoint's quant_method
    quantization_backend: Decision = Decision(None, "no quantization: the method is not qlora")
    quantization_group_size: Decision = Decision(None, "no quantization: the method is not qlora")
    offload: Decision = Decision("none", "nothing is offloaded to host memory")  # none | optimizer | optimizer+params
    attention: Decision = Decision("sdpa", "torch's scaled-dot-product attention")  # eager | sdpa | flash
    loss_head: Decision = Decision("model", "the model's own loss")  # fused | model | liger (ftc.stages.LossHead)
    kernels: Decision = Decision([], "no speed kernels: the stock transformers layers")  # train.kernels (ftc.kernels)
    memory: MemoryEstimate | None = None
    time: TimeEstimate | None = None
    # max_cutoff_len, max_micro_batch_size under the plan's checkpointing; each also _with_checkpointing and
    # _without_checkpointing
    limits: dict[str, int | None] = field(default_factory=dict)
    fits: bool = True  # False: no layout fits; the notes say by how much and what would
    notes: tuple[str, ...] = ()

    def decisions(self) -> dict[str, Decision]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Decision)}

    @property
    def global_batch_size(self) -> int:
        return self.micro_batch_size.value * self.world_size.value * self.gradient_accumulation_steps.value

    def to_dict(self) -> dict[str, Any]:
        decisions = self.decisions()
        return {
            "hardware": asdict(self.hardware),
            **{name: decision.value for name, decision in decisions.items()},
            "global_batch_size": self.global_batch_size,
            "fits": self.fits,
            "nodes": self.hardware.nodes,
            "memory": _memory_dict(self.memory),
            "time": asdict(self.time) if self.time else None,
            "limits": dict(self.limits),
            "reasons": {name: decision.reason for name, decision in decisions.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        decision_names = [f.name for f in fields(cls) if f.type == "Decision" and f.name in data]
        memory = data.get("memory")
        return cls(
            hardware=HardwareRef(**data["hardware"]),
            # a decision added since the plan was written takes its default
            **{name: Decision(data[name], data["reasons"][name]) for name in decision_names},
            memory=_memory_from_dict(memory) if memory else None,
            time=TimeEstimate(**data["time"]) if data.get("time") else None,
            limits=dict(data.get("limits") or {}),
            fits=data.get("fits", True),
            notes=tuple(data.get("notes", ())),
        )


def _memory_dict(memory: MemoryEstimate | None) -> dict[str, Any] | None:
    if memory is None:
        return None
    return {
        # per_device_gib is the reserved peak: the number that has to fit on the device.
        "per_device_gib": memory.reserved_gib,
        "allocated_gib": memory.allocated_gib,
        "capacity_gib": memory.capacity_gib,
        "host_gib": memory.host_gib,
        "terms": dict(memory.terms),
        "assumptions": list(memory.assumptions),
    }


def _memory_from_dict(data: dict[str, Any]) -> MemoryEstimate:
    return MemoryEstimate(
        terms=dict(data["terms"]),
        allocated_gib=data["allocated_gib"],
        reserved_gib=data["per_device_gib"],
        capacity_gib=data["capacity_gib"],
        host_gib=data["host_gib"],
        assumptions=tuple(data.get("assumptions", ())),
    )
