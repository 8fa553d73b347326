"""The plan: every hardware-dependent setting of a run, each a value with the reason it was chosen."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Decision:
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason}


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
class Plan:
    hardware: HardwareRef
    backend: Decision  # cpu | cuda | npu
    precision: Decision  # fp32 | bf16 | fp16
    strategy: Decision  # single | ddp | zero1 | zero2 | zero3 | fsdp
    world_size: Decision  # data-parallel processes in all
    micro_batch_size: Decision  # examples per device per forward pass
    gradient_accumulation_steps: Decision
    gradient_checkpointing: Decision
    notes: tuple[str, ...] = field(default=())

    def decisions(self) -> dict[str, Decision]:
        return {name: value for name, value in vars(self).items() if isinstance(value, Decision)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardware": asdict(self.hardware),
            "decisions": {name: d.to_dict() for name, d in self.decisions().items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        decisions = {name: Decision(**d) for name, d in data["decisions"].items()}
        return cls(hardware=HardwareRef(**data["hardware"]), notes=tuple(data.get("notes", ())), **decisions)
