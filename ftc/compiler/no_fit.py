"""When nothing fits: the plan at the most memory-saving layout, by how much it is over, and what would fit."""

from __future__ import annotations

from dataclasses import replace

from ftc.compiler.batch import accumulation, per_process_batch
from ftc.compiler.fitting import Estimator, Layout, candidate_layouts, first_fit, limits, longest_cutoff_len
from ftc.compiler.hardware import Hardware
from ftc.compiler.kernel_plan import kernels_decision
from ftc.compiler.memory.estimate import MemoryInputs
from ftc.compiler.memory.states import OptimizerSettings
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.optimizer_checks import layerwise_section
from ftc.compiler.plan import Decision, HardwareRef, Plan
from ftc.compiler.quantization_plan import Quantization
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.spec.models import Spec


def does_not_fit(
    spec: Spec,
    hardware: HardwareRef,
    record: Hardware,
    arch: Architecture,
    base: MemoryInputs,
    layouts: list[Layout],
    budget: float,
    estimate: Estimator,
    precision: Decision,
    bits: Quantization,
    attention: Decision,
    loss_head: Decision,
) -> Plan:
    last = layouts[-1]
    tightest = replace(base, strategy=last.strategy, offload=last.offload, gradient_checkpointing=True)
    memory = estimate(tightest)
    over = memory.reserved_gib - budget
    binding, binding_gib = max(memory.terms.items(), key=lambda item: item[1])
    suggestions = [
        f"does not fit: needs {memory.reserved_gib:.1f} GiB per device, {over:.1f} GiB over the budget; "
        f"the largest term is {binding} ({binding_gib:.1f} GiB)"
    ]
    suggestions += _what_would_fit(spec, hardware, tightest, budget, estimate)
    reason = "nothing fits; shown at the most memory-saving layout"
    return Plan(
        hardware=hardware,
        backend=Decision(record.backend, f"{record.name} is driven by the {record.backend} backend"),
        precision=precision,
        strategy=Decision(last.strategy, reason),
        world_size=Decision(hardware.world_size, f"{hardware.devices_per_node} device(s) × {hardware.nodes} node(s)"),
        micro_batch_size=Decision(1, reason),
        gradient_accumulation_steps=accumulation(1, hardware.world_size, spec.train.global_batch_size),
        gradient_checkpointing=Decision(True, reason),
        **bits.plan_fields(),
        offload=Decision(last.offload, reason),
        attention=attention,
        loss_head=loss_head,
        kernels=kernels_decision(spec, loss_head),
        memory=memory,
        limits=limits(tightest, budget, estimate),
        fits=False,
        notes=tuple(suggestions),
    )


def _pure_bf16_would_fit(
    spec: Spec, hardware: HardwareRef, tightest: MemoryInputs, budget: float, estimate: Estimator
) -> list[str]:
    """train.pure_bf16 where the spec could take it: a method that trains base weights, computing in bf16, on
    replicas (the rules `_pure_bf16_rules` keeps)."""
    method, train = METHODS[spec.train.method], spec.train
    takes_it = method.trains_all_weights or method.trains_chosen_layers
    if (
        train.pure_bf16
        or not takes_it
        or tightest.precision != "bf16"
        or train.strategy not in ("auto", "single", "ddp")
    ):
        return []
    layouts = candidate_layouts(hardware.world_size, train.method, train.stage, train.optimizer, pure_bf16=True)
    fit = first_fit(replace(tightest, pure_bf16=True), layouts, [True], budget, estimate)
    if fit is None:
        return []
    return [
        f"train.pure_bf16 = true (weights, gradients and moments in bf16, no fp32 copy) would need "
        f"{fit.estimate.reserved_gib:.1f} GiB at micro-batch 1 ({fit.layout.strategy})"
    ]


def _what_would_fit(
    spec: Spec, hardware: HardwareRef, tightest: MemoryInputs, budget: float, estimate: Estimator
) -> list[str]:
    ideas = []
    for devices in (2, 4, 8, 16, 32, 64, 128, 256, 512):
        world = devices * hardware.nodes if devices > hardware.devices_per_node else 0
        if world and estimate(replace(tightest, world_size=world)).reserved_gib <= budget:
            ideas.append(f"more devices: {devices}x{hardware.name} per node would fit")
            break
    optimizer = OPTIMIZERS[spec.train.optimizer]
    # The other ideas step with AdamW where this optimizer cannot take them (adapters, sharding).
    adamw = {"optimizer": "adamw", "optimizer_settings": OptimizerSettings()}
    if optimizer.whole_weights_only:
        layouts = candidate_layouts(
            hardware.world_size, spec.train.method, spec.train.stage, pure_bf16=spec.train.pure_bf16
        )
        fit = first_fit(replace(tightest, **adamw), layouts, [True], budget, estimate)
        if fit is not None:
            ideas.append(
                f"train.optimizer = 'adamw', which can shard ({fit.layout.strategy}, offload {fit.layout.offload}), "
                f"would need {fit.estimate.reserved_gib:.1f} GiB"
            )
    section = optimizer.section
    if section in ("galore", "apollo") and not layerwise_section(spec) and hardware.world_size == 1:
        # Layer-wise stepping frees each gradient as it is used, but takes the whole batch in one micro-batch.
        settings = replace(tightest.optimizer_settings, layerwise=True)
        per_process = per_process_batch(spec.train.global_batch_size, 1)
        layerwise = replace(tightest, optimizer_settings=settings, micro_batch_size=per_process)
        needed = estimate(replace(layerwise, gradient_accumulation=False)).reserved_gib
        if needed <= budget:
            ideas.append(
                f"{section}.layerwise = true (one gradient alive at a time, micro-batch {per_process}) would need "
                f"{needed:.1f} GiB"
            )
    ideas += _pure_bf16_would_fit(spec, hardware, tightest, budget, estimate)
    if not METHODS[spec.train.method].quantizes:
        quantized = replace(tightest, method="qlora", quantization_bits=4, oft=None, **adamw)  # LoRA at [lora]'s rank
        needed = estimate(quantized).reserved_gib
        if needed <= budget:
            with_adamw = "" if spec.train.optimizer == adamw["optimizer"] else " with adamw"
            ideas.append(f"method = 'qlora' (4-bit){with_adamw} would need {needed:.1f} GiB")
    longest = longest_cutoff_len(tightest, budget, estimate)
    if longest:
        ideas.append(f"a shorter data.cutoff_len: up to {longest} tokens fits")
    if not ideas:
        ideas.append(f"no number of {hardware.name} devices fits it: choose devices with more memory")
    return ideas
