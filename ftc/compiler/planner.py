"""The planner: a pure function from (spec, hardware) to a Plan whose every decision says why."""

from __future__ import annotations

from ftc.compiler.batch import split_batch
from ftc.compiler.hardware import Hardware, hardware_record
from ftc.compiler.plan import Decision, HardwareRef, Plan
from ftc.errors import FtcError
from ftc.spec.models import Spec


def compile_plan(spec: Spec, hardware: HardwareRef) -> Plan:
    record = hardware_record(hardware)
    if record.backend != "cpu":
        # A GPU plan must come with the memory estimate that decides sharding and micro-batch; until
        # that estimate is in, a plan without it would only guess.
        raise FtcError(
            f"plans for {record.name} need the memory estimate, which is not built yet",
            "plan for --hardware cpu for now",
        )
    if record.backend == "cpu" and hardware.world_size > 1:
        raise FtcError(
            f"{hardware.label()}: several CPU processes need distributed execution, which is not built yet",
            "plan for --hardware cpu",
        )
    world = hardware.world_size
    micro, accumulation = split_batch(
        spec.train.global_batch_size, world, record.max_micro_batch, spec.train.micro_batch_size
    )
    return Plan(
        hardware=hardware,
        backend=Decision(record.backend, _backend_reason(record)),
        precision=_precision(spec, record),
        strategy=Decision("single", "one process: nothing to shard or replicate"),
        world_size=Decision(world, f"{hardware.devices_per_node} device(s) × {hardware.nodes} node(s)"),
        micro_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        gradient_checkpointing=_checkpointing(spec, record),
    )


def _backend_reason(record: Hardware) -> str:
    if record.backend == "cpu":
        return "no accelerator in the plan: torch runs on the CPU"
    return f"{record.name} is driven by the {record.backend} backend"


def _precision(spec: Spec, record: Hardware) -> Decision:
    asked = spec.train.precision
    if asked == "auto":
        if record.backend == "cpu":
            return Decision("fp32", "CPU: fp32 — CPU bf16 kernels are rarely faster and lose precision")
        if record.bf16:
            return Decision("bf16", f"{record.name} supports bf16: fp32 range without loss scaling")
        return Decision("fp16", f"{record.name} lacks bf16: fp16 with dynamic loss scaling")
    supported = {"fp32": True, "bf16": record.bf16, "fp16": record.fp16}[asked]
    if not supported:
        raise FtcError(
            f"train.precision = '{asked}' is not supported on {record.name}",
            "use 'auto', or "
            + " / ".join(p for p in ("fp32", "bf16", "fp16") if p != asked and getattr(record, p, True)),
        )
    return Decision(asked, "set in the spec (train.precision)")


def _checkpointing(spec: Spec, record: Hardware) -> Decision:
    asked = spec.train.gradient_checkpointing
    if asked is not None:
        return Decision(asked, "set in the spec (train.gradient_checkpointing)")
    if record.backend == "cpu":
        return Decision(False, "CPU: activations live in host memory; recomputing them would cost ~30% more time")
    return Decision(False, "off until the memory estimate shows activations do not fit")
