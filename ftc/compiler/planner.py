"""The planner: a pure function from (spec, hardware, model shapes) to a Plan whose every decision says why."""

from __future__ import annotations

from dataclasses import replace

from ftc.compiler.adapters import AdapterShape, spec_with_adapter
from ftc.compiler.batch import (
    accumulation,
    check_least_per_process,
    check_requested_micro,
    least_micro_batch,
    per_process_batch,
    split_batch,
)
from ftc.compiler.block_expansion import added_blocks, expanded_architecture
from ftc.compiler.feature_notes import feature_notes, oft_blocks, oft_notes
from ftc.compiler.fitting import (
    Estimator,
    Fit,
    Layout,
    budget_gib,
    candidate_layouts,
    first_fit,
    largest_dividing_micro_batch,
    limits,
)
from ftc.compiler.hardware import Hardware, hardware_record
from ftc.compiler.kernel_plan import (
    KERNEL_HEADS,
    attention_decision,
    check_kernels,
    kernels_decision,
    loss_head_decision,
)
from ftc.compiler.memory.estimate import MemoryInputs, estimate_memory
from ftc.compiler.memory.states import ImageSide
from ftc.compiler.model_families import family_of
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.no_fit import does_not_fit
from ftc.compiler.optimizer_checks import check_optimizer, layerwise_section, optimizer_settings, target_names
from ftc.compiler.plan import Decision, HardwareRef, MemoryEstimate, Plan
from ftc.compiler.quantization_plan import plan_quantization, published_quantized
from ftc.compiler.rules import check_combination
from ftc.compiler.timing import estimate_time
from ftc.compiler.vision_plan import largest_image, row_tokens, vision_notes
from ftc.errors import FtcError
from ftc.quantizers import QuantScheme
from ftc.spec.models import LoraSection, OftSection, Spec
from ftc.stages import STAGES


def compile_plan(
    spec: Spec,
    hardware: HardwareRef,
    arch: Architecture | None = None,
    estimate: Estimator = estimate_memory,
    adapter: AdapterShape | None = None,
) -> Plan:
    """`adapter`: model.adapter's shape (ftc.models.lookup.adapter_for), which a lora/qlora run trains further."""
    spec, adapter_notes = spec_with_adapter(spec, adapter, arch)
    arch, position_notes = _positions(spec, arch)
    arch, expansion_notes = _expanded(spec, arch)
    _check_shift_attention(spec, arch)
    image_notes = vision_notes(spec, arch)
    plan = _plan(spec, hardware, arch, estimate)
    notes = adapter_notes + position_notes + expansion_notes + image_notes
    return replace(plan, notes=plan.notes + notes) if notes else plan


def _positions(spec: Spec, arch: Architecture | None) -> tuple[Architecture | None, tuple[str, ...]]:
    """The model's position limit as the run will have it (model.rope_scaling stretches it), and what the plan
    says when data.cutoff_len goes past it."""
    if arch is None:
        return None, ()
    scaling, cutoff = spec.model.rope_scaling, spec.data.cutoff_len
    own = arch.max_position_embeddings
    notes: list[str] = []
    if scaling is not None:
        if own is None:
            raise FtcError(
                f"model.rope_scaling: {spec.model.name_or_path!r} sets no position limit (ALiBi): it has no rotary "
                "positions to scale",
                "remove model.rope_scaling",
            )
        positions = int(own * scaling.factor)
        notes.append(
            f"RoPE scaling ({scaling.type}, ×{scaling.factor:g}): rows up to {positions} tokens (the model's: {own})"
        )
        arch = replace(arch, max_position_embeddings=positions)
    limit = arch.max_position_embeddings
    if limit is not None and cutoff > limit:
        hint = "raise model.rope_scaling's factor" if scaling else "set model.rope_scaling to stretch them"
        notes.append(f"data.cutoff_len = {cutoff} is past the model's {limit} positions: {hint}, or shorten the rows")
    return arch, tuple(notes)


def _expanded(spec: Spec, arch: Architecture | None) -> tuple[Architecture | None, tuple[str, ...]]:
    """The model as the run trains it: [llama_pro] inserts its copies, which the memory and time then count."""
    added = spec.llama_pro.added_layers
    if added is None:
        return arch, ()
    if arch is None:
        return None, ("llama_pro: the base's blocks are unknown here; the run checks that the count divides them",)
    grown, note = expanded_architecture(arch, added, spec.train.method)
    return grown, (note,)


def _check_shift_attention(spec: Spec, arch: Architecture | None) -> None:
    """What the model's family and heads allow train.shift_attention (the spec checked the rows and the stage)."""
    if spec.attention_group is None or arch is None:
        return
    why_not = family_of(arch).shift_attention_why_not
    if why_not:
        raise FtcError(
            f"train.shift_attention: {spec.model.name_or_path!r} ({arch.model_type}) {why_not}, so its attention "
            "cannot be grouped",
            "remove train.shift_attention; a family whose attention runs through transformers' interface (llama, "
            "mistral, qwen2, qwen3, gemma, phi3, ...) takes it",
        )
    if arch.num_attention_heads % 2:
        raise FtcError(
            f"train.shift_attention shifts half of the heads, and {spec.model.name_or_path!r} has "
            f"{arch.num_attention_heads}",
            "remove train.shift_attention",
        )


def _plan(spec: Spec, hardware: HardwareRef, arch: Architecture | None, estimate: Estimator) -> Plan:
    record = hardware_record(hardware)
    check_optimizer(spec, arch, hardware.world_size, record.backend)
    check_kernels(spec, record, arch)
    if record.backend == "cpu":
        return _cpu_plan(spec, hardware, record, arch, estimate)
    if arch is None:
        raise FtcError(
            f"the shapes of {spec.model.name_or_path!r} are unknown, so its memory cannot be planned",
            "point model.name_or_path at a local folder with config.json, or use a hub id ftc knows",
        )
    return _device_plan(spec, hardware, record, arch, estimate)


# -- the CPU: host RAM is the limit, speed sets the micro-batch ---------------------------------------
def _cpu_plan(
    spec: Spec, hardware: HardwareRef, record: Hardware, arch: Architecture | None, estimate: Estimator
) -> Plan:
    train = spec.train
    world = hardware.world_size
    strategy = _cpu_strategy(train.strategy, world)
    check_combination(
        spec.model.name_or_path, train.method, train.stage, strategy.value, record, published_quantized(arch)
    )
    check_least_per_process(train.stage, train.global_batch_size, world)
    micro, steps = split_batch(
        train.global_batch_size, world, record.max_micro_batch, train.micro_batch_size, least_micro_batch(train.stage)
    )
    if layerwise_section(spec) and steps.value > 1:
        micro = Decision(per_process_batch(train.global_batch_size, world), _LAYERWISE_MICRO)
        steps = accumulation(micro.value, world, train.global_batch_size)
    precision = _precision(spec, record)
    checkpointing = (
        Decision(train.gradient_checkpointing, "set in the spec (train.gradient_checkpointing)")
        if train.gradient_checkpointing is not None
        else Decision(False, "CPU: activations live in host memory; recomputing them would cost ~30% more time")
    )
    loss_head = loss_head_decision(spec, record, arch, micro.value)
    quantization = plan_quantization(spec, record, arch)
    attention = attention_decision(spec, record, precision.value)
    memory = None
    if arch is not None:
        inputs = _memory_inputs(
            spec,
            arch,
            record,
            precision.value,
            quantization.scheme,
            attention.value,
            loss_head.value,
            micro.value,
            checkpointing.value,
            world,
        )
        memory = estimate(replace(inputs, strategy=strategy.value))  # fsdp and zero shard over the processes
    return Plan(
        hardware=hardware,
        backend=Decision("cpu", "no accelerator in the plan: torch runs on the CPU"),
        precision=precision,
        strategy=strategy,
        world_size=Decision(world, "one CPU process" if world == 1 else f"{world} CPU processes (gloo)"),
        micro_batch_size=micro,
        gradient_accumulation_steps=steps,
        gradient_checkpointing=checkpointing,
        **quantization.plan_fields(),
        attention=attention,
        loss_head=loss_head,
        kernels=kernels_decision(spec, loss_head),
        memory=memory,
        notes=(() if memory else ("memory not estimated: the model's shapes are unknown",))
        + feature_notes(spec, attention.value)
        + oft_notes(spec, arch),
    )


def _cpu_strategy(asked: str, world: int) -> Decision:
    """Several CPU processes replicate (ddp) or shard (fsdp, zero1-3) over gloo."""
    if world == 1:
        return Decision("single", "one process: nothing to shard or replicate")
    if asked in ("auto", "ddp"):
        reason = "set in the spec (train.strategy)" if asked == "ddp" else "CPU processes: each holds a replica"
        return Decision("ddp", f"{reason}; gradients all-reduced over gloo")
    if asked == "fsdp":
        return Decision("fsdp", "set in the spec (train.strategy); FSDP2 shards over gloo")
    if asked in ("zero1", "zero2", "zero3"):
        # DeepSpeed's CPU accelerator: it joins the gloo group the runtime opens (oneCCL is not needed).
        return Decision(asked, f"set in the spec (train.strategy); DeepSpeed ZeRO stage {asked[-1]} over gloo")
    raise FtcError(
        f"train.strategy = '{asked}' on {world} CPU processes",
        "use 'ddp', 'fsdp' or a ZeRO stage, or plan for one process (hardware 'cpu')",
    )


# -- accelerators: fit model states, activations and logits into each device ---------------------------
def _device_plan(spec: Spec, hardware: HardwareRef, record: Hardware, arch: Architecture, estimate: Estimator) -> Plan:
    train = spec.train
    world = hardware.world_size
    per_process = per_process_batch(train.global_batch_size, world)
    check_least_per_process(train.stage, train.global_batch_size, world)
    precision = _precision(spec, record)
    bits = plan_quantization(spec, record, arch)
    attention = attention_decision(spec, record, precision.value)
    loss_head = loss_head_decision(spec, record, arch, 1)
    base = _memory_inputs(
        spec, arch, record, precision.value, bits.scheme, attention.value, loss_head.value, 1, False, world
    )
    budget = budget_gib(record.memory_gib)

    layouts = [
        layout
        for layout in candidate_layouts(world, train.method, train.stage, train.optimizer, train.pure_bf16)
        if train.strategy in ("auto", layout.strategy) and train.offload in ("auto", layout.offload)
    ]
    if not layouts:
        if train.strategy == "auto":  # only the offload was asked for, and no layout of this run has it
            _refuse_offload(train.offload, train.stage, train.method, world, train.pure_bf16)
        layouts = [
            Layout(_requested_strategy(train.strategy, world), "none" if train.offload == "auto" else train.offload)
        ]
    for layout in layouts:
        if train.strategy != "auto":
            check_combination(
                spec.model.name_or_path, train.method, train.stage, layout.strategy, record, published_quantized(arch)
            )
    check_combination(spec.model.name_or_path, train.method, train.stage, "single", record)
    checkpointing_choices = [False, True] if train.gradient_checkpointing is None else [train.gradient_checkpointing]

    layerwise = layerwise_section(spec)
    # Layer-wise stepping takes the whole per-process batch in one micro-batch: fit that, not one example.
    fit = first_fit(base, layouts, checkpointing_choices, budget, estimate, per_process if layerwise else 1)
    if fit is None:
        return does_not_fit(
            spec, hardware, record, arch, base, layouts, budget, estimate, precision, bits, attention, loss_head
        )

    fitted = replace(
        base,
        strategy=fit.layout.strategy,
        offload=fit.layout.offload,
        gradient_checkpointing=fit.gradient_checkpointing,
    )
    if train.micro_batch_size is not None:
        check_requested_micro(train.global_batch_size, world, train.micro_batch_size)
        _require_fit(
            estimate(replace(fitted, micro_batch_size=train.micro_batch_size)), budget, "train.micro_batch_size"
        )
        micro = Decision(train.micro_batch_size, "set in the spec (train.micro_batch_size)")
    elif layerwise:
        _require_fit(estimate(replace(fitted, micro_batch_size=per_process)), budget, f"{layerwise}.layerwise")
        micro = Decision(per_process, _LAYERWISE_MICRO)
    else:
        chosen = largest_dividing_micro_batch(fitted, budget, per_process, record.max_micro_batch, estimate)
        _require_least_micro(train.stage, chosen, per_process, budget)
        micro = Decision(
            chosen,
            f"the largest micro-batch that fits in {budget:.1f} GiB and divides the {per_process} examples per process",
        )
    steps = accumulation(micro.value, world, train.global_batch_size)
    # Gradients live through the forward only when micro-batches accumulate; the search assumed they do.
    memory = estimate(replace(fitted, micro_batch_size=micro.value, gradient_accumulation=steps.value > 1))
    # an image's tokens pass through the language model like text; the tower's own compute is not counted
    tokens = train.max_steps * train.global_batch_size * row_tokens(spec, arch) if train.max_steps else None
    time = estimate_time(
        arch,
        train.method,
        row_tokens(spec, arch),
        fit.gradient_checkpointing,
        world,
        record.peak_tflops,
        tokens,
        spec.attention_group,
    )
    return Plan(
        hardware=hardware,
        backend=Decision(record.backend, f"{record.name} is driven by the {record.backend} backend"),
        precision=precision,
        strategy=Decision(fit.layout.strategy, _strategy_reason(fit, base, layouts, budget, estimate, train.strategy)),
        world_size=Decision(world, f"{hardware.devices_per_node} device(s) × {hardware.nodes} node(s)"),
        micro_batch_size=micro,
        gradient_accumulation_steps=steps,
        gradient_checkpointing=_checkpointing_reason(fit, train.gradient_checkpointing),
        **bits.plan_fields(),
        offload=_offload_reason(fit.layout.offload, train.offload),
        attention=attention,
        loss_head=loss_head,
        kernels=kernels_decision(spec, loss_head),
        memory=memory,
        time=time,
        limits=limits(fitted, budget, estimate),
        notes=_notes(spec, hardware, memory, fit.layout, arch)
        + feature_notes(spec, attention.value)
        + oft_notes(spec, arch),
    )


def _require_least_micro(stage: str, chosen: int, per_process: int, budget: float) -> None:
    least = least_micro_batch(stage)
    if chosen < least:
        raise FtcError(
            f"train.stage = '{stage}' needs at least {least} examples per micro-batch, but no micro-batch of {least} "
            f"or more that divides the {per_process} examples per process fits in {budget:.1f} GiB",
            "add devices, use train.method = 'qlora', shorten data.cutoff_len, or set train.gradient_checkpointing",
        )


def _notes(
    spec: Spec, hardware: HardwareRef, memory: MemoryEstimate, layout: Layout, arch: Architecture
) -> tuple[str, ...]:
    row = spec.data.cutoff_len
    image = f" plus one image of {row_tokens(spec, arch) - row} tokens" if row_tokens(spec, arch) > row else ""
    notes = [f"the estimate assumes every row is {row} tokens (cutoff_len){image}: an upper bound"]
    if layout.offload != "none":
        per_node = memory.host_gib * hardware.devices_per_node
        notes.append(
            f"offload needs ≈ {per_node:.0f} GiB of host RAM per node; its PCIe traffic is not in the time estimate"
        )
    return tuple(notes)


def _memory_inputs(
    spec: Spec,
    arch: Architecture,
    record: Hardware,
    precision: str,
    quantization: QuantScheme | None,
    attention: str,
    loss_head: str,
    micro: int,
    checkpointing: bool,
    world: int,
) -> MemoryInputs:
    adapter = spec.adapter_section
    adapter_targets = target_names((adapter or spec.lora).target)
    added = spec.llama_pro.added_layers
    return MemoryInputs(
        arch=arch,
        method=spec.train.method,
        stage=spec.train.stage,
        precision=precision,
        micro_batch_size=micro,
        seq_len=row_tokens(spec, arch),
        gradient_checkpointing=checkpointing,
        world_size=world,
        quantization_bits=quantization.bits if quantization else None,
        quantization=quantization,
        lora_rank=spec.lora.rank,
        adapter_targets=adapter_targets,
        attention=attention,
        optimizer=spec.train.optimizer,
        optimizer_settings=optimizer_settings(spec),
        pure_bf16=spec.train.pure_bf16,
        fused_cross_entropy=loss_head == "fused",
        kernel_cross_entropy=loss_head in KERNEL_HEADS,
        kernels=tuple(spec.train.kernels),
        lora_dropout=adapter.dropout if isinstance(adapter, LoraSection) else 0.0,
        oft=oft_blocks(adapter) if isinstance(adapter, OftSection) else None,
        freeze_trainable_layers=spec.freeze.top_layers,
        freeze_trainable_modules=target_names(spec.freeze.trainable_modules),
        freeze_extra_modules=tuple(spec.freeze.extra_modules),
        added_blocks=added_blocks(arch.num_layers - added, added) if added else (),
        context_gib=record.context_gib,
        capacity_gib=record.memory_gib,
        examples_per_process=spec.train.global_batch_size // world,
        attention_group=spec.attention_group,
        images=largest_image(spec, arch),
        image_side=ImageSide(
            tower=not spec.vision.freeze_tower,
            projector=spec.vision.projector_only or not spec.vision.freeze_projector,
            language=not spec.vision.projector_only,
        ),
    )


_LAYERWISE_MICRO = "layer-wise stepping: every micro-batch is a whole optimizer step, so it takes the global batch"


def _refuse_offload(offload: str, stage: str, method: str, world: int, pure_bf16: bool = False) -> None:
    offered = sorted({layout.offload for layout in candidate_layouts(world, method, stage, pure_bf16=pure_bf16)})
    why = (
        f"train.stage = '{stage}' runs only as whole replicas (single or ddp), which offload nothing"
        if STAGES[stage].replicas_only
        else f"no layout ftc plans on {world} device(s) offloads '{offload}'"
    )
    hint = f"use one of: auto, {', '.join(offered)}"
    raise FtcError(f"train.offload = '{offload}' is not possible here: {why}", hint)


def _requested_strategy(strategy: str, world: int) -> str:
    if strategy == "single" and world > 1:
        raise FtcError("train.strategy = 'single' with several devices", "use 'ddp' or a ZeRO stage, or one device")
    return strategy


def _require_fit(found: MemoryEstimate, budget: float, key: str) -> None:
    if found.reserved_gib > budget:
        raise FtcError(
            f"{key} does not fit: it needs {found.reserved_gib:.1f} GiB per device, over the {budget:.1f} GiB budget "
            f"({_largest_terms(found)})",
            "leave it unset to let the plan choose, or change the hardware",
        )


def _largest_terms(found: MemoryEstimate, count: int = 3) -> str:
    ranked = sorted(found.terms.items(), key=lambda item: item[1], reverse=True)[:count]
    return ", ".join(f"{name} {gib:.1f} GiB" for name, gib in ranked)


# -- reasons -------------------------------------------------------------------------------------------
def _precision(spec: Spec, record: Hardware) -> Decision:
    chosen = _chosen_precision(spec, record)
    if spec.train.pure_bf16 and chosen.value != "bf16":
        raise FtcError(
            f"train.pure_bf16 holds the trained weights in bf16, but the plan computes in {chosen.value} on "
            f"{record.name} ({chosen.reason})",
            "set train.precision = 'bf16' on hardware that supports it, or remove train.pure_bf16",
        )
    return chosen


def _chosen_precision(spec: Spec, record: Hardware) -> Decision:
    asked = spec.train.precision
    if asked == "auto":
        if record.backend == "cpu":
            return Decision("fp32", "CPU: fp32 — CPU bf16 kernels are rarely faster and lose precision")
        if record.bf16:
            return Decision("bf16", f"{record.name} supports bf16: fp32 range without loss scaling")
        return Decision("fp16", f"{record.name} lacks bf16: fp16 with dynamic loss scaling")
    supported = {"fp32": True, "bf16": record.bf16, "fp16": record.fp16}[asked]
    if not supported:
        others = [
            p
            for p in ("fp32", "bf16", "fp16")
            if p != asked and {"fp32": True, "bf16": record.bf16, "fp16": record.fp16}[p]
        ]
        raise FtcError(
            f"train.precision = '{asked}' is not supported on {record.name}", f"use 'auto', or {' / '.join(others)}"
        )
    return Decision(asked, "set in the spec (train.precision)")


def _strategy_reason(
    fit: Fit, base: MemoryInputs, layouts: list[Layout], budget: float, estimate: Estimator, asked: str
) -> str:
    used = f"{fit.estimate.reserved_gib:.1f} of a {budget:.1f} GiB budget at micro-batch {fit.micro}"
    if asked != "auto":
        return f"set in the spec (train.strategy); {used}"
    first = layouts[0]
    if fit.layout == first:
        what = "one device holds it all" if base.world_size == 1 else f"replicated on {base.world_size} devices"
        return f"{fit.layout.strategy}: {what} ({used})"
    needed = estimate(replace(base, strategy=first.strategy, offload=first.offload, gradient_checkpointing=True))
    return (
        f"{fit.layout.strategy}: {first.strategy} would need {needed.reserved_gib:.1f} GiB per device; "
        f"sharding over {base.world_size} brings it to {used}"
    )


def _checkpointing_reason(fit: Fit, asked: bool | None) -> Decision:
    if asked is not None:
        return Decision(asked, "set in the spec (train.gradient_checkpointing)")
    if fit.gradient_checkpointing:
        return Decision(True, f"activations do not fit at micro-batch {fit.micro} without recomputing them")
    return Decision(False, "activations fit without recomputing: ~30% less compute than checkpointing")


def _offload_reason(offload: str, asked: str) -> Decision:
    if asked != "auto":
        return Decision(offload, "set in the spec (train.offload)")
    if offload == "none":
        return Decision("none", "everything fits on the devices: nothing crosses PCIe each step")
    return Decision(offload, f"{offload} moved to host memory: the least offload that fits")
