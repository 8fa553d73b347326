"""The planner: a pure function from (spec, hardware, model shapes) to a Plan whose every decision says why."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
from ftc.compiler.fitting import (
    Estimator,
    Fit,
    Layout,
    budget_gib,
    candidate_layouts,
    first_fit,
    largest_dividing_micro_batch,
    limits,
    longest_cutoff_len,
)
from ftc.compiler.hardware import Hardware, hardware_record
from ftc.compiler.memory.estimate import MemoryInputs, estimate_memory
from ftc.compiler.memory.logits import MODEL_LOSS_BYTES_PER_LOGIT
from ftc.compiler.memory.states import ImageSide, OptimizerSettings
from ftc.compiler.model_families import family_of
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import Linear, OftBlocks, adapted_layers, oft_parameters
from ftc.compiler.plan import Decision, HardwareRef, MemoryEstimate, Plan
from ftc.compiler.rules import check_combination
from ftc.compiler.timing import estimate_time
from ftc.compiler.vision import ImageBudget, image_budget
from ftc.devices.backends import BACKENDS
from ftc.errors import FtcError
from ftc.kernels import FLASH_ATTENTION, KERNELS
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import DEFAULT_BACKEND, ON_THE_FLY, QUANTIZERS, QuantScheme, chosen_scheme
from ftc.spec.models import LoraSection, OftSection, Spec
from ftc.stages import STAGES

GIB = 1024**3
# On the CPU the model's own loss runs 1.5-2.2x faster than trl's chunked head (benchmarks/loss_head.py) but holds
# the full logits; past this many GiB of them the chunked head leaves that host memory to the rest of the run.
MODEL_LOSS_MAX_LOGITS_GIB = 2.0


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
    vision_notes = _vision_notes(spec, arch)
    plan = _plan(spec, hardware, arch, estimate)
    notes = adapter_notes + position_notes + expansion_notes + vision_notes
    return replace(plan, notes=plan.notes + notes) if notes else plan


# The note an image+text model's plan carries (and only its): what the images cost. `ftc doctor` and the
# extras read it to tell an image run from a text one.
IMAGES_NOTE = "images: "
# The keys that mean something only for an image+text model.
_IMAGE_KEYS = ("data.image_max_pixels", "data.image_min_pixels")


def _images(spec: Spec, arch: Architecture | None) -> ImageBudget | None:
    """The largest image a row holds, for a model with a vision tower; None for a text model or unknown shapes."""
    if arch is None or arch.vision is None:
        return None
    return image_budget(arch.vision, spec.data.image_min_pixels, spec.data.image_max_pixels)


def row_tokens(spec: Spec, arch: Architecture | None) -> int:
    """Tokens of the longest row: data.cutoff_len of text, and an image's tokens beside them."""
    budget = _images(spec, arch)
    return spec.data.cutoff_len + (budget.tokens if budget else 0)


def _vision_notes(spec: Spec, arch: Architecture | None) -> tuple[str, ...]:
    """What the images cost the plan, or a refusal where the spec sets image keys for a text-only model."""
    set_here = [key for key in _IMAGE_KEYS if getattr(spec.data, key.split(".")[1]) is not None]
    set_here += ["[vision]"] if spec.vision.model_fields_set else []
    if arch is not None and arch.vision is None and set_here:
        raise FtcError(
            f"{set_here[0]} is set, but {spec.model.name_or_path!r} ({arch.model_type}) has no vision tower",
            "remove it, or train an image+text model (model_type llava, qwen2_vl, qwen2_5_vl or gemma3)",
        )
    budget = _images(spec, arch)
    if budget is None:
        return ()
    stage = STAGES[spec.train.stage]
    if not stage.takes_images:
        able = [name for name, record in STAGES.items() if record.takes_images]
        raise FtcError(
            f"train.stage = {stage.name!r} cannot train an image+text model ({spec.model.name_or_path!r}, "
            f"{arch.model_type}): {stage.no_images_why}",
            f"train an image+text model with train.stage = {' or '.join(map(repr, able))}, or train the "
            f"{stage.name} stage on a text-only model",
        )
    if spec.data.packing:
        raise FtcError(
            f"data.packing = true, but {spec.model.name_or_path!r} ({arch.model_type}) is an image+text model: "
            "packed rows join several examples in one sequence, and the processor's image tokens and their pixels "
            "(with Qwen2-VL's image grids and multimodal positions) are matched per row, so one example's images "
            "would be read into another's",
            "set data.packing = false; image rows are padded in their batch",
        )
    vision = spec.vision
    trains = (
        "the projector alone"
        if vision.projector_only
        else ", ".join(
            part
            for part, frozen in (("the vision tower", vision.freeze_tower), ("the projector", vision.freeze_projector))
            if not frozen
        )
        or "neither the vision tower nor the projector"
    )
    # A pair's chosen and rejected rows each carry the prompt, its images with it (ftc.runtime.data.images).
    pairs = "; a pair is two such rows, and its images pass the tower once for each" if stage.paired else ""
    return (
        f"{IMAGES_NOTE}{budget.reason}; the estimate assumes one such image in every row, so each row is "
        f"{spec.data.cutoff_len} + {budget.tokens} = {row_tokens(spec, arch)} tokens{pairs}",
        f"vision: {trains} trains beside the method's weights; vision_activations holds the image side's "
        f"activations ({budget.tower_tokens} tower tokens per image)",
    )


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
    _check_optimizer(spec, arch, hardware.world_size, record.backend)
    _check_kernels(spec, record, arch)
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
        spec.model.name_or_path, train.method, train.stage, strategy.value, record, _published_quantized(arch)
    )
    check_least_per_process(train.stage, train.global_batch_size, world)
    micro, steps = split_batch(
        train.global_batch_size, world, record.max_micro_batch, train.micro_batch_size, least_micro_batch(train.stage)
    )
    if _layerwise(spec) and steps.value > 1:
        micro = Decision(per_process_batch(train.global_batch_size, world), _LAYERWISE_MICRO)
        steps = accumulation(micro.value, world, train.global_batch_size)
    precision = _precision(spec, record)
    checkpointing = (
        Decision(train.gradient_checkpointing, "set in the spec (train.gradient_checkpointing)")
        if train.gradient_checkpointing is not None
        else Decision(False, "CPU: activations live in host memory; recomputing them would cost ~30% more time")
    )
    loss_head = _loss_head(spec, record, arch, micro.value)
    quantization = _quantization(spec, record, arch)
    attention = _attention(spec, record, precision.value)
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
        kernels=_kernels(spec, loss_head),
        memory=memory,
        notes=(() if memory else ("memory not estimated: the model's shapes are unknown",))
        + _feature_notes(spec, attention.value)
        + _adapter_notes(spec, arch),
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
    bits = _quantization(spec, record, arch)
    attention = _attention(spec, record, precision.value)
    loss_head = _loss_head(spec, record, arch, 1)
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
                spec.model.name_or_path, train.method, train.stage, layout.strategy, record, _published_quantized(arch)
            )
    check_combination(spec.model.name_or_path, train.method, train.stage, "single", record)
    checkpointing_choices = [False, True] if train.gradient_checkpointing is None else [train.gradient_checkpointing]

    # Layer-wise stepping takes the whole per-process batch in one micro-batch: fit that, not one example.
    fit = first_fit(base, layouts, checkpointing_choices, budget, estimate, per_process if _layerwise(spec) else 1)
    if fit is None:
        return _does_not_fit(
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
    elif _layerwise(spec):
        _require_fit(estimate(replace(fitted, micro_batch_size=per_process)), budget, f"{_layerwise(spec)}.layerwise")
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
        kernels=_kernels(spec, loss_head),
        memory=memory,
        time=time,
        limits=limits(fitted, budget, estimate),
        notes=_notes(spec, hardware, memory, fit.layout, arch)
        + _feature_notes(spec, attention.value)
        + _adapter_notes(spec, arch),
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


def _feature_notes(spec: Spec, attention: str) -> tuple[str, ...]:
    """What switched-on features do to the run that the decisions above do not show."""
    notes = _packing_notes(spec, attention)
    if spec.train.neftune_alpha is not None:
        notes += (
            f"NEFTune: uniform noise (alpha {spec.train.neftune_alpha:g}) on the input embeddings while training; "
            "a transient the size of the embeddings' output, below the forward's peak, so no term changes",
        )
    group, cutoff = spec.attention_group, spec.data.cutoff_len
    if group is not None:
        notes += (
            f"shifted sparse attention (LongLoRA): rows padded to whole groups of {group} tokens ({cutoff // group} "
            f"per {cutoff}-token row), half of the heads grouped {group // 2} tokens further on; each query attends "
            f"to at most {group} keys, not {cutoff}, which scales the attention FLOPs and each layer's mask bias "
            "(two layouts: batch × 2 × seq × group); evaluation and the saved model attend over whole rows",
        )
    return notes


def _adapter_notes(spec: Spec, arch: Architecture | None) -> tuple[str, ...]:
    """OFT's size and what it keeps, which the terms hold but do not show; checks its blocks against the shapes."""
    adapter = spec.adapter_section
    if not isinstance(adapter, OftSection) or arch is None:
        return ()
    blocks = oft_blocks(adapter)
    layers = adapted_layers(arch, adapter.target, "oft.target")
    splits = sorted({(linear.in_features, *blocks.split(linear)) for linear in layers})
    shown = ", ".join(f"{width} → {count} blocks of {size}" for width, count, size in splits)
    series = (
        f"a {blocks.neumann_terms}-term Cayley–Neumann series" if blocks.neumann_terms else "the exact Cayley transform"
    )
    return (
        f"OFT: {oft_parameters(arch, blocks, adapter.target):,} trained values (each block's rotation stores "
        f"b(b-1)/2{', one shared per layer' if blocks.shared else ''}) on {sum(linear.count for linear in layers)} "
        f"layers, input width {shown}; each rotation is built by {series} and its block matrices are kept for the "
        "backward (counted in activations)",
    )


def oft_blocks(oft: OftSection) -> OftBlocks:
    block_size, rank = oft.size
    terms = oft.neumann_terms if oft.cayley_neumann else 0
    return OftBlocks(block_size=block_size, rank=rank, shared=oft.block_share, neumann_terms=terms)


def _packing_notes(spec: Spec, attention: str) -> tuple[str, ...]:
    if not spec.data.packing:
        return ()
    apart = (
        "flash-attention's variable-length kernel keeps them apart"
        if attention == "flash"
        else f"{attention} keeps them apart with a block-diagonal mask, but still computes each row's full attention"
    )
    return (f"packing: each row of {spec.data.cutoff_len} tokens holds several examples; {apart}",)


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
    adapter_targets = _names((adapter or spec.lora).target)
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
        kernel_cross_entropy=loss_head in _KERNEL_HEADS,
        kernels=tuple(spec.train.kernels),
        lora_dropout=adapter.dropout if isinstance(adapter, LoraSection) else 0.0,
        oft=oft_blocks(adapter) if isinstance(adapter, OftSection) else None,
        freeze_trainable_layers=spec.freeze.top_layers,
        freeze_trainable_modules=_names(spec.freeze.trainable_modules),
        freeze_extra_modules=tuple(spec.freeze.extra_modules),
        added_blocks=added_blocks(arch.num_layers - added, added) if added else (),
        context_gib=record.context_gib,
        capacity_gib=record.memory_gib,
        examples_per_process=spec.train.global_batch_size // world,
        attention_group=spec.attention_group,
        images=_images(spec, arch),
        image_side=ImageSide(
            tower=not spec.vision.freeze_tower,
            projector=spec.vision.projector_only or not spec.vision.freeze_projector,
            language=not spec.vision.projector_only,
        ),
    )


_LAYERWISE_MICRO = "layer-wise stepping: every micro-batch is a whole optimizer step, so it takes the global batch"


def optimizer_settings(spec: Spec) -> OptimizerSettings:
    """What the optimizer's memory depends on, from its section of the spec."""
    section = OPTIMIZERS[spec.train.optimizer].section
    if section in ("galore", "apollo"):
        projected = getattr(spec, section)
        return OptimizerSettings(rank=projected.rank, targets=_names(projected.target), layerwise=projected.layerwise)
    return OptimizerSettings()


def _layerwise(spec: Spec) -> str | None:
    """The section that asks for layer-wise stepping, if one does."""
    section = OPTIMIZERS[spec.train.optimizer].section
    return section if section in ("galore", "apollo") and getattr(spec, section).layerwise else None


def _check_optimizer(spec: Spec, arch: Architecture | None, world: int, backend: str) -> None:
    """What train.optimizer cannot do on this backend, with this model or this many processes (the spec checked
    the rest)."""
    name = spec.train.optimizer
    optimizer = OPTIMIZERS[name]
    if backend not in optimizer.backends:
        raise FtcError(
            f"train.optimizer = {name!r} runs on {', '.join(optimizer.backends)} only: it {optimizer.backends_why}",
            "plan for a CUDA device, or use " + ("galore_adamw" if optimizer.section == "galore" else "adamw"),
        )
    if world > 1 and optimizer.strategies == ("single",):
        raise FtcError(
            f"train.optimizer = {name!r} runs on one device: it {optimizer.strategies_why}",
            "plan for one device, or use adamw with ZeRO",
        )
    layerwise = _layerwise(spec)
    if layerwise and world > 1:
        raise FtcError(
            f"{layerwise}.layerwise steps each weight inside the backward, where DDP has not yet averaged its "
            f"gradient: it runs on one device ({world} planned)",
            f"plan for one device, or remove {layerwise}.layerwise",
        )
    if arch is None:
        return
    if optimizer.section in ("galore", "apollo"):
        projected = getattr(spec, optimizer.section)
        key = f"{optimizer.section}.target"
        narrowest = min(adapted_layers(arch, _names(projected.target), key), key=_shorter_side)
        if projected.rank > _shorter_side(narrowest):
            raise FtcError(
                f"{optimizer.section}.rank = {projected.rank} is larger than {narrowest.name}'s shorter side "
                f"({narrowest.in_features} × {narrowest.out_features}): a projection cannot have more dimensions "
                "than the gradient it projects",
                f"set {optimizer.section}.rank to {_shorter_side(narrowest)} or less, or leave {narrowest.name} out of "
                f"{key}",
            )
    if optimizer.states == "per_block_second_moment" and arch.q_width != arch.hidden_size:
        raise FtcError(
            f"train.optimizer = 'adam_mini' splits the query and key matrices into heads of hidden_size / heads "
            f"values, but {spec.model.name_or_path!r} has {arch.num_attention_heads} heads of {arch.head_dim} "
            f"(not {arch.hidden_size} wide together)",
            "use adamw or muon for this model",
        )


def _shorter_side(linear: Linear) -> int:
    return min(linear.in_features, linear.out_features)


def _names(names: str | list[str]) -> str | tuple[str, ...]:
    """'all', or a list of names as the hashable tuple the estimate's inputs hold."""
    return names if isinstance(names, str) else tuple(names)


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


@dataclass(frozen=True)
class _Quantization:
    """How the plan holds the base's decoder linears: the decisions it shows, and the scheme the estimate counts."""

    bits: Decision
    backend: Decision
    group_size: Decision
    scheme: QuantScheme | None = None

    def plan_fields(self) -> dict[str, Decision]:
        return {
            "quantization_bits": self.bits,
            "quantization_backend": self.backend,
            "quantization_group_size": self.group_size,
        }


_NOT_QUANTIZED = "no quantization: the method is not qlora"


def _quantization(spec: Spec, record: Hardware, arch: Architecture | None) -> _Quantization:
    method = METHODS[spec.train.method]
    checkpoint = arch.quantization if arch is not None else None
    if checkpoint is not None:
        return _checkpoint_quantization(spec, record, checkpoint)
    if not method.quantizes:
        nothing = Decision(None, _NOT_QUANTIZED)
        return _Quantization(nothing, nothing, nothing)
    asked = spec.quantization
    scheme = chosen_scheme(asked.backend, asked.bits, asked.group_size)
    _check_runs_on(scheme, record, "quantization.backend")
    quantizer = QUANTIZERS[scheme.backend]
    backend_said = "set in the spec (quantization.backend)" if asked.backend != DEFAULT_BACKEND else "the default"
    bits_said = "set in the spec (quantization.bits)" if asked.bits is not None else f"{scheme.backend}'s default"
    group_said = (
        "set in the spec (quantization.group_size)" if asked.group_size is not None else f"{scheme.backend}'s default"
    )
    return _Quantization(
        Decision(scheme.bits, f"{bits_said}: {scheme.title}"),
        Decision(scheme.backend, f"{backend_said}: {quantizer.summary}, applied as the base loads"),
        Decision(scheme.group_size, group_said if scheme.group_size else f"{scheme.backend} does not group weights"),
        scheme,
    )


def _checkpoint_quantization(spec: Spec, record: Hardware, checkpoint: QuantScheme) -> _Quantization:
    """A base published quantized: it trains only as qlora, held as its config.json says."""
    method = spec.train.method
    published = f"{spec.model.name_or_path} is a {checkpoint.title} checkpoint (config.json's quantization_config)"
    if not METHODS[method].quantizes:
        adapter_methods = [name for name, record in METHODS.items() if record.quantizes]
        raise FtcError(
            f"train.method = {method!r}: {published}, whose quantized weights "
            + ("cannot take gradients" if not METHODS[method].has_adapter else "are not the plain weights lora adapts"),
            f"set train.method = {adapter_methods[0]!r} (a LoRA adapter over the base as it was quantized), or start "
            "from the unquantized model",
        )
    written = {"backend": checkpoint.backend, "bits": checkpoint.bits, "group_size": checkpoint.group_size}
    for key, value in written.items():
        asked = getattr(spec.quantization, key)
        if key in spec.quantization.model_fields_set and asked != value:
            raise FtcError(
                f"quantization.{key} = {asked!r}, but {published} with {key} {value!r}",
                f"remove quantization.{key}: a quantized checkpoint is held as it was published",
            )
    _check_runs_on(checkpoint, record, "model.name_or_path")
    said = "read from the checkpoint's config.json (quantization_config)"
    return _Quantization(
        Decision(checkpoint.bits, f"{said}: {checkpoint.title}"),
        Decision(checkpoint.backend, f"{said}: {QUANTIZERS[checkpoint.backend].summary}"),
        Decision(checkpoint.group_size, said if checkpoint.group_size else f"{checkpoint.backend} does not group"),
        checkpoint,
    )


def _published_quantized(arch: Architecture | None) -> bool:
    return arch is not None and arch.quantization is not None


def _check_runs_on(scheme: QuantScheme, record: Hardware, key: str) -> None:
    quantizer = QUANTIZERS[scheme.backend]
    if record.backend not in quantizer.devices:
        runs_on = [name for name in ON_THE_FLY if record.backend in QUANTIZERS[name].devices]
        other = f"quantization.backend = {runs_on[0]!r}" if runs_on else "train.method = 'lora'"
        raise FtcError(
            f"{key}: {scheme.title} needs {quantizer.needs}, not the {BACKENDS[record.backend].title} of {record.name}",
            f"plan for hardware it runs on, or use {other} on {BACKENDS[record.backend].devices}"
            + (", starting from the unquantized model" if scheme.from_checkpoint else ""),
        )


def _attention(spec: Spec, record: Hardware, precision: str) -> Decision:
    asked = spec.model.attention
    if asked == "flash" and record.backend not in FLASH_ATTENTION.backends:
        raise FtcError(
            f"model.attention = 'flash' runs FlashAttention, whose {FLASH_ATTENTION.backends_why}: the plan is for "
            f"{BACKENDS[record.backend].title} processes, which have no flash kernel",
            f"use 'sdpa' (or 'auto') on {BACKENDS[record.backend].devices}, or plan for a GPU",
        )
    if asked == "flash" and not record.flash_attention:
        raise FtcError(
            f"model.attention = 'flash' needs Ampere or newer; {record.name} has no flash kernel", "use 'sdpa'"
        )
    if asked != "auto":
        return Decision(asked, "set in the spec (model.attention)")
    if record.backend == "cpu":
        return Decision("sdpa", "torch's scaled-dot-product attention, the CPU's fastest kernel")
    if record.flash_attention and precision in ("bf16", "fp16"):
        return Decision(
            "sdpa", f"torch SDPA runs a flash kernel on {record.name} in {precision}: no seq × seq scores kept"
        )
    return Decision("sdpa", "torch SDPA: a memory-efficient kernel where the hardware has one")


def _loss_head(spec: Spec, record: Hardware, arch: Architecture | None, micro: int) -> Decision:
    """A listed kernel's loss where the stage's trainer lets it; else trl's chunked head where memory is scarce
    (accelerators), and the model's own, faster loss on the CPU."""
    stage = spec.train.stage
    listed = {KERNELS[name].loss_head for name in spec.train.kernels} & _KERNEL_HEADS
    heads = tuple(head for head in STAGES[stage].loss_heads if head not in _KERNEL_HEADS or head in listed)
    if spec.train.loss_head != "auto":
        return Decision(spec.train.loss_head, "set in the spec (train.loss_head)")
    kernel = next((KERNELS[name] for name in spec.train.kernels if KERNELS[name].loss_head in heads), None)
    if kernel is not None:
        return Decision(
            kernel.loss_head,
            f"{kernel.library}'s fused linear cross-entropy (train.kernels): the loss and its gradient a chunk of "
            "tokens at a time, never the full logits",
        )
    if len(heads) == 1:
        how = "trl's chunked head" if heads[0] == "fused" else "the model's own loss"
        if STAGES[stage].logit_bytes:
            how = "its trainer's log-probabilities from the full logits"
        return Decision(heads[0], f"{how}: the only way train.stage = '{stage}' computes its loss")
    if record.backend != "cpu":
        return Decision("fused", f"{record.name}: trl's chunked head, which never holds the full logits at once")
    if arch is None:
        return Decision("fused", "the vocabulary is unknown, so the full logits cannot be bounded: trl's chunked head")
    logits_gib = micro * row_tokens(spec, arch) * arch.vocab_size * MODEL_LOSS_BYTES_PER_LOGIT / GIB
    if logits_gib > MODEL_LOSS_MAX_LOGITS_GIB:
        return Decision(
            "fused",
            f"CPU: the model's own loss would hold {logits_gib:.1f} GiB of logits (over "
            f"{MODEL_LOSS_MAX_LOGITS_GIB:g} GiB), so trl's chunked head",
        )
    return Decision(
        "model",
        f"CPU: the model's own loss over the full logits ({_gib_text(logits_gib)} at the peak) is 1.5-2.2x faster than "
        "trl's chunked head; entropy and token accuracy are computed at logging steps",
    )


# The loss heads a kernel brings (ftc.kernels), offered only where train.kernels lists it.
_KERNEL_HEADS = {kernel.loss_head for kernel in KERNELS.values() if kernel.loss_head}


def _check_kernels(spec: Spec, record: Hardware, arch: Architecture | None) -> None:
    """What train.kernels cannot do on this hardware or with this model (the spec checked the stage)."""
    for name in spec.train.kernels:
        kernel = KERNELS[name]
        if record.backend not in kernel.backends:
            allowed = " or ".join(BACKENDS[backend].devices for backend in kernel.backends)
            raise FtcError(
                f"train.kernels = {list(spec.train.kernels)}: {kernel.library} runs on {allowed} only: "
                f"{kernel.backends_why}, and the plan is for {record.name}",
                f"plan for a GPU (e.g. --hardware H100), or remove {name!r} from train.kernels",
            )
        if arch is not None and kernel.model_types and arch.model_type not in kernel.model_types:
            raise FtcError(
                f"train.kernels = {list(spec.train.kernels)}: {kernel.library} has no kernels for model_type "
                f"{arch.model_type!r}, so it would patch nothing",
                f"remove {name!r} from train.kernels; it has kernels for: {', '.join(kernel.model_types)}",
            )


def _kernels(spec: Spec, loss_head: Decision) -> Decision:
    """What each listed kernel patches, and whether it computes the loss or the stage's trainer does."""
    names = list(spec.train.kernels)
    if not names:
        return Decision([], "no speed kernels: the stock transformers layers")
    said = []
    for name in names:
        kernel = KERNELS[name]
        if loss_head.value == kernel.loss_head:
            loss = "and computes the loss"
        elif kernel.loss_head in STAGES[spec.train.stage].loss_heads:
            loss = f"in the blocks only: train.loss_head = {loss_head.value!r} keeps that loss"
        else:
            loss = (
                f"in the blocks only: the trainer of train.stage = {spec.train.stage!r} computes the loss itself "
                f"(the {loss_head.value!r} head)"
            )
        said.append(f"{kernel.library} ({kernel.licence}) patches the model {loss}")
    return Decision(names, "set in the spec (train.kernels); " + "; ".join(said))


def _gib_text(gib: float) -> str:
    return f"{gib:.1f} GiB" if gib >= 1 else f"{gib * 1024:.0f} MiB"


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


# -- when nothing fits: say by how much, and what would ------------------------------------------------
def _does_not_fit(
    spec: Spec,
    hardware: HardwareRef,
    record: Hardware,
    arch: Architecture,
    base: MemoryInputs,
    layouts: list[Layout],
    budget: float,
    estimate: Estimator,
    precision: Decision,
    bits: _Quantization,
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
        kernels=_kernels(spec, loss_head),
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
    if section in ("galore", "apollo") and not _layerwise(spec) and hardware.world_size == 1:
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
