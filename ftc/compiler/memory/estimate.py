"""The per-device memory estimate: what one training step holds at its peak, term by term.

A step has four candidate peaks, and the estimate takes the largest:

1. the loss's forward: every saved activation, autocast's weight copies, the logits being reduced;
2. the loss's backward: the same activations, plus the loss head's gradient transients;
3. the top block's backward: the activations, the block's backward transients (and its recompute
   under checkpointing), and the head's weight gradient;
4. the optimizer step: every gradient, with the activations gone.

Weights, adapters, optimizer moments, master weights, frozen reference models and the runtime context
live through all four. The formulas are checked against live-tensor peaks of real CPU training steps by
`benchmarks/memory_accuracy.py`; the CUDA-only pieces (FlashAttention-2, Triton's fused loss, the
caching allocator) follow the libraries' code and published numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ftc.compiler.memory.activations import (
    Step,
    adapted_linears,
    layer_backward_transient,
    saved_before_head,
    saved_by_layer,
    saved_layer_inputs,
    shared_inputs,
)
from ftc.compiler.memory.logits import LossHead, liger_chunk_tokens, loss_head
from ftc.compiler.memory.sampling import sampling_memory
from ftc.compiler.memory.states import (
    DTYPE_BYTES,
    GIB,
    ImageSide,
    OptimizerSettings,
    States,
    frozen_copy_bytes,
    holding,
    model_states,
)
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.module_tree import freeze_selection
from ftc.compiler.params import OftBlocks, count_parameters
from ftc.compiler.plan import MemoryEstimate
from ftc.compiler.vision import ImageBudget, TowerActivations, tower_activations
from ftc.errors import FtcError
from ftc.kernels import KERNELS
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import DEFAULT_BACKEND, QUANTIZERS, QuantScheme, chosen_scheme
from ftc.stages import STAGES

TERMS = (
    "weights",
    "gradients",
    "optimizer",
    "master_weights",
    "adapters",
    "activations",
    "vision_activations",
    "logits",
    "reference_model",
    "context",
)
# The values each setting may take; the planner passes validated spec values, so a miss is a bug worth naming.
CHOICES = {
    "method": tuple(METHODS),
    "stage": tuple(STAGES),
    "precision": ("fp32", "bf16", "fp16"),
    "strategy": ("single", "ddp", "zero1", "zero2", "zero3", "fsdp"),
    "offload": ("none", "optimizer", "optimizer+params"),
    "attention": ("eager", "sdpa", "flash"),
    "optimizer": tuple(OPTIMIZERS),
}
# The caching allocator holds freed blocks for reuse; published runs show it a few percent above the
# allocated peak, and up to ~3 GiB above it at large sizes. Modelled as 8 % of the allocated peak,
# at least 0.25 GiB (small runs still split blocks) and at most 3 GiB.
ALLOCATOR_SLACK = 0.08
ALLOCATOR_SLACK_FLOOR_GIB = 0.25
ALLOCATOR_SLACK_CAP_GIB = 3.0
# from_pretrained reads one checkpoint shard at a time; transformers writes shards of at most 5 GB.
CHECKPOINT_SHARD_BYTES = 5e9


@dataclass(frozen=True)
class MemoryInputs:
    arch: Architecture
    method: str  # a name of ftc.methods.METHODS
    stage: str  # a name of ftc.stages.STAGES
    precision: str  # fp32 | bf16 | fp16: the compute dtype
    micro_batch_size: int
    seq_len: int  # tokens per row the estimate assumes (rows are padded to it)
    gradient_checkpointing: bool
    world_size: int = 1  # data-parallel shards (ZeRO/FSDP divide by this)
    strategy: str = "single"  # single | ddp | zero1 | zero2 | zero3 | fsdp
    offload: str = "none"  # none | optimizer | optimizer+params
    quantization_bits: int | None = None  # qlora's bits (the scheme's, where one is given)
    quantization: QuantScheme | None = None  # qlora's backend, bits and group; None: bitsandbytes at quantization_bits
    lora_rank: int = 8
    adapter_targets: str | tuple[str, ...] = "all"  # the layers the adapter (LoRA's or OFT's) adapts
    oft: OftBlocks | None = None  # an OFT adapter's blocks: set where the method trains OFT rotations, not LoRA
    attention: str = "sdpa"  # eager | sdpa | flash
    optimizer: str = "adamw"  # a train.optimizer value (ftc.optimizers)
    optimizer_settings: OptimizerSettings = OptimizerSettings()
    pure_bf16: bool = False  # train.pure_bf16: full/freeze hold what trains in bf16, with no fp32 copy
    # trl's chunked loss head: no batch × seq × vocab logits. trl's SFT, DPO and KTO trainers (1.x) install
    # it whenever they compute the loss themselves, so ftc's SFT runtime always trains through it.
    fused_cross_entropy: bool = False
    # liger-kernel's fused linear cross-entropy computes the loss (plan.loss_head "liger"): no full logits either.
    kernel_cross_entropy: bool = False
    kernels: tuple[str, ...] = ()  # train.kernels (ftc.kernels): what they do in the blocks is said, not counted
    freeze_trainable_layers: int = 2  # for method "freeze": the last N decoder layers train
    freeze_trainable_modules: str | tuple[str, ...] = "all"  # within them, the modules so named ("all": whole blocks)
    freeze_extra_modules: tuple[str, ...] = ()  # modules outside the blocks that train too (embed_tokens, lm_head)
    # [llama_pro]: the identity copies inserted into `arch`; only they train (freeze) or carry LoRA (lora).
    added_blocks: tuple[int, ...] = ()
    context_gib: float = 0.0  # runtime context the device holds before any tensor
    capacity_gib: float | None = None  # device memory; None on the CPU, where host RAM is the device
    # Gradients of earlier micro-batches live through each forward when a step accumulates several; one
    # micro-batch per step frees them at zero_grad. Unknown when the estimate chooses the micro-batch,
    # so it defaults to keeping them: the estimate must not promise memory the run will not have.
    gradient_accumulation: bool = True
    lora_dropout: float = 0.0  # dropout on LoRA's input keeps a copy and a mask per adapted layer
    # Rollout stages: the rows each process samples replies for per step (ftc.compiler.memory.sampling).
    examples_per_process: int = 1
    # train.shift_attention: tokens per attention group (SDPA only); None attends over whole rows.
    attention_group: int | None = None
    # An image+text model: the image each row holds (its tokens are already in seq_len), and what trains of
    # the image side ([vision]).
    images: ImageBudget | None = None
    image_side: ImageSide = ImageSide()


@dataclass(frozen=True)
class _Phase:
    name: str
    terms: dict[str, float]  # bytes

    @property
    def total(self) -> float:
        return sum(self.terms.values())


def estimate_memory(inputs: MemoryInputs) -> MemoryEstimate:
    _check(inputs)
    states = _states(inputs)
    step = _step(inputs)
    on_cpu = inputs.capacity_gib is None
    record = STAGES[inputs.stage]
    # A stage that can run trl's fused head logs its entropy and token accuracy; through the model's own
    # loss the runtime computes them from the logits (ftc.runtime.loss_head).
    chunked = inputs.fused_cross_entropy or inputs.kernel_cross_entropy
    metrics = not chunked and "fused" in record.loss_heads
    head = loss_head(
        step,
        inputs.fused_cross_entropy,
        on_cpu,
        scalar_head=record.score_head,
        token_metrics=metrics,
        bytes_per_logit=record.logit_bytes,
        liger=inputs.kernel_cross_entropy,
    )
    peak = max(_phases(inputs, states, step, head), key=lambda phase: phase.total)

    terms = {name: peak.terms.get(name, 0.0) / GIB for name in TERMS}
    terms["context"] = inputs.context_gib
    allocated = sum(terms.values())
    reserved = allocated if on_cpu else allocated + _allocator_slack(allocated)
    host = (states.host + _loading_buffer(inputs)) / GIB + (allocated if on_cpu else 0.0)
    return MemoryEstimate(
        terms=terms,
        allocated_gib=allocated,
        reserved_gib=reserved,
        capacity_gib=inputs.capacity_gib,
        host_gib=host,
        assumptions=_assumptions(inputs, peak.name),
    )


def largest_micro_batch(inputs: MemoryInputs, budget_gib: float, ceiling: int = 4096) -> int:
    """The largest micro-batch whose reserved peak fits in `budget_gib`; 0 when not even one row fits."""
    return _largest(lambda n: estimate_memory(replace(inputs, micro_batch_size=n)).reserved_gib, budget_gib, ceiling)


def longest_seq_len(inputs: MemoryInputs, budget_gib: float) -> int:
    """The longest rows (tokens) whose reserved peak fits in `budget_gib`; 0 when not even one token fits."""
    ceiling = inputs.arch.max_position_embeddings or 1 << 20
    return _largest(lambda n: estimate_memory(replace(inputs, seq_len=n)).reserved_gib, budget_gib, ceiling)


def _largest(memory_at, budget_gib: float, ceiling: int) -> int:
    """Binary search for the largest n in [1, ceiling] with memory_at(n) ≤ budget; memory grows with n."""
    if memory_at(1) > budget_gib:
        return 0
    low, high = 1, ceiling
    while low < high:
        middle = (low + high + 1) // 2
        if memory_at(middle) <= budget_gib:
            low = middle
        else:
            high = middle - 1
    return low


def _check(inputs: MemoryInputs) -> None:
    for field, allowed in CHOICES.items():
        value = getattr(inputs, field)
        if value not in allowed:
            raise FtcError(f"memory estimate: {field} = {value!r} is not one it knows", f"one of: {', '.join(allowed)}")
    if METHODS[inputs.method].quantizes:
        scheme = held_scheme(inputs)
        allowed = QUANTIZERS[scheme.backend].bits
        if scheme.bits not in allowed:
            raise FtcError(
                f"memory estimate: {scheme.backend} does not hold {scheme.bits}-bit weights",
                f"one of: {', '.join(map(str, allowed))}",
            )

    if inputs.attention_group is not None and inputs.attention != "sdpa":
        raise FtcError("memory estimate: an attention_group runs through sdpa only", "set attention = 'sdpa'")


def _keeps_int8_inputs(inputs: MemoryInputs) -> bool:
    scheme = held_scheme(inputs)
    return scheme.bits == 8 and QUANTIZERS[scheme.backend].keeps_int8_inputs


def held_scheme(inputs: MemoryInputs) -> QuantScheme:
    """qlora's scheme: the one given, else the default backend at the inputs' bits."""
    return inputs.quantization or chosen_scheme(DEFAULT_BACKEND, inputs.quantization_bits, None)


def _states(inputs: MemoryInputs) -> States:
    return model_states(
        inputs.arch,
        inputs.method,
        inputs.precision,
        inputs.strategy,
        inputs.world_size,
        inputs.offload,
        inputs.optimizer,
        held_scheme(inputs) if METHODS[inputs.method].quantizes else None,
        inputs.lora_rank,
        inputs.adapter_targets,
        inputs.freeze_trainable_layers,
        inputs.freeze_trainable_modules,
        inputs.freeze_extra_modules,
        inputs.stage,
        settings=inputs.optimizer_settings,
        oft=inputs.oft,
        added_blocks=inputs.added_blocks,
        image_side=inputs.image_side if inputs.images is not None else None,
        pure_half=inputs.pure_bf16,
    )


def _step(inputs: MemoryInputs) -> Step:
    arch, method = inputs.arch, METHODS[inputs.method]
    adapted = adapted_linears(arch, inputs.adapter_targets) if method.has_adapter else frozenset()
    trained_blocks = frozenset(range(arch.num_layers)) if method.trains_all_weights else frozenset()
    outside: frozenset[str] = frozenset()
    if method.trains_chosen_layers:
        freeze = freeze_selection(
            arch,
            inputs.freeze_trainable_layers,
            inputs.freeze_trainable_modules,
            inputs.freeze_extra_modules,
            inputs.added_blocks,
        )
        # A block with any trained module is counted as trained whole: its saved tensors are an upper bound.
        trained_blocks = freeze.blocks
        outside = frozenset(name for name, trains in (("embedding", freeze.embedding), ("head", freeze.head)) if trains)
    adapted_blocks = frozenset(inputs.added_blocks) if method.has_adapter and inputs.added_blocks else None
    return Step(
        arch=arch,
        held=holding(
            inputs.method,
            inputs.precision,
            inputs.strategy,
            inputs.stage,
            optimizer=inputs.optimizer,
            quantizer=held_scheme(inputs).backend,
            pure_half=inputs.pure_bf16,
        ),
        method=inputs.method,
        rows=inputs.micro_batch_size * (2 if STAGES[inputs.stage].paired else 1),
        seq_len=inputs.seq_len,
        attention=inputs.attention,
        checkpointing=inputs.gradient_checkpointing,
        adapted=adapted,
        lora_rank=inputs.lora_rank,
        lora_dropout=inputs.lora_dropout,
        oft=inputs.oft if method.has_adapter else None,
        trained_blocks=trained_blocks,
        trained_outside=outside,
        adapted_blocks=adapted_blocks,
        on_cpu=inputs.capacity_gib is None,
        int8_base=method.quantizes and _keeps_int8_inputs(inputs),
        attention_group=inputs.attention_group,
    )


def _phases(inputs: MemoryInputs, states: States, step: Step, head: LossHead) -> list[_Phase]:
    layers = range(inputs.arch.num_layers)
    if step.checkpointing:
        kept = saved_layer_inputs(step)
        # the recompute of one block restores everything it saves (the widest block, for mixed MoE stacks)
        recompute = max((saved_by_layer(step, i) for i in layers), default=0.0)
    else:
        kept = sum(saved_by_layer(step, i) for i in layers)
        recompute = 0.0
    kept += shared_inputs(step) + saved_before_head(step)
    block_transient = layer_backward_transient(step, states.largest_matrix)

    # Autocast caches its weight copies for the whole forward; without checkpointing autograd then keeps
    # them until each matrix's backward, with it the recompute casts one block's worth at a time.
    copies_forward = states.autocast_copies + head.head_copy
    copies_backward = head.head_copy if step.checkpointing else copies_forward
    # LoRA: every adapted block's adapter
    blocks_with_copies = len(step.trained_blocks) or len(step.adapted_blocks or ()) or inputs.arch.num_layers
    copies_recompute = states.autocast_copies / blocks_with_copies if step.checkpointing else 0.0

    held_gradients = states.gradients if inputs.gradient_accumulation else 0.0
    head_gradient = max(held_gradients, states.head_gradient)
    lasting = {
        "weights": states.weights + states.gathered,
        "optimizer": states.optimizer,
        "master_weights": states.master_weights,
        "adapters": states.adapters,
        "reference_model": _reference_models(inputs),
    }

    image_side = _image_side(inputs, step.rows)

    def phase(name: str, copies: float, gradients: float, activations: float, logits: float) -> _Phase:
        terms = dict(lasting)
        terms["weights"] += copies
        terms["gradients"] = gradients + states.ddp_buckets
        terms["activations"] = activations
        terms["vision_activations"] = image_side.saved if activations else 0.0
        terms["logits"] = logits
        return _Phase(name, terms)

    towers = []
    if inputs.images is not None:  # the tower runs first: what it saves, plus its one block at work
        towers.append(phase("the vision tower's forward", copies_forward, held_gradients, 0.0, 0.0))
        towers[0].terms["vision_activations"] = image_side.saved + image_side.working

    chunked = inputs.fused_cross_entropy or inputs.kernel_cross_entropy
    fused_gradient = head_gradient if chunked else held_gradients
    rollout = []
    samples = STAGES[inputs.stage].samples
    if samples:  # sampling: no gradients (zero_grad set them to None), a KV cache
        rows = inputs.examples_per_process if samples == "step" else inputs.micro_batch_size
        sampled = sampling_memory(inputs.arch, rows, inputs.seq_len, inputs.precision)
        rollout.append(phase("sampling (the KV cache)", 0.0, 0.0, sampled.cache, sampled.logits))
    return (
        rollout
        + towers
        + [
            phase("the loss's forward", copies_forward, held_gradients, kept, head.saved + head.forward_peak),
            phase("the loss's backward", copies_backward, fused_gradient, kept, head.saved + head.backward_peak),
            phase(
                "the top block's backward",
                copies_backward + copies_recompute,
                head_gradient,
                kept + recompute + block_transient,
                head.saved,
            ),
            phase("the optimizer step", 0.0, states.gradients, 0.0, 0.0),
        ]
    )


def _image_side(inputs: MemoryInputs, rows: int) -> TowerActivations:
    """The image side's activations: one image per row, each of the budget's size."""
    if inputs.images is None or inputs.arch.vision is None:
        return TowerActivations(0.0, 0.0)
    return tower_activations(
        inputs.arch.vision,
        inputs.images,
        rows,
        DTYPE_BYTES[inputs.precision],
        tower_trains=inputs.image_side.tower,
        projector_trains=inputs.image_side.projector,
    )


def step_tokens(inputs: MemoryInputs) -> int:
    """Tokens in one forward: the micro-batch's rows (two per example for paired stages) × seq_len."""
    return inputs.micro_batch_size * (2 if STAGES[inputs.stage].paired else 1) * inputs.seq_len


def _reference_models(inputs: MemoryInputs) -> float:
    """Frozen models beside the policy: a reference (DPO, KTO, GRPO, PPO), and PPO's reward model."""
    stage = STAGES[inputs.stage]
    shards = inputs.world_size if inputs.strategy in ("zero3", "fsdp") else 1
    # [llama_pro]'s copies start as the identity: the reference is the base as published, without them.
    base = replace(inputs.arch, num_layers=inputs.arch.num_layers - len(inputs.added_blocks))
    frozen = frozen_copy_bytes(base, inputs.precision) / max(shards, 1)
    # peft gets the reference log-probabilities by disabling the adapter: no second model
    reference = frozen if stage.reference and not METHODS[inputs.method].has_adapter else 0.0
    # a reward model the stage needs is counted as a frozen copy of the policy's shape; an optional one
    # (GRPO's, beside its reward functions) is not. PPO's value is a linear head on the policy's last
    # hidden state (ftc.runtime.stages.ppo), not a second model.
    reward = frozen if stage.reward_model == "needed" else 0.0
    return reference + reward


def _allocator_slack(allocated_gib: float) -> float:
    return min(max(ALLOCATOR_SLACK * allocated_gib, ALLOCATOR_SLACK_FLOOR_GIB), ALLOCATOR_SLACK_CAP_GIB)


def _loading_buffer(inputs: MemoryInputs) -> float:
    # A checkpoint is stored in half precision (or fp32 for small models); reading takes one shard.
    stored = count_parameters(inputs.arch).total * DTYPE_BYTES.get(inputs.precision, 2)
    return min(stored, CHECKPOINT_SHARD_BYTES)


def _assumptions(inputs: MemoryInputs, peak: str) -> tuple[str, ...]:
    said = [f"every row padded to seq_len = {inputs.seq_len} tokens (no packing); the peak is at {peak}"]
    said.append(
        {
            "sdpa": "SDPA with a padding mask: a memory-efficient kernel with no seq² scores, but a batch × seq² "
            "float mask bias kept per layer, and k/v repeated to every head for grouped-query models",
            "eager": "eager attention: each layer keeps batch × heads × seq² softmax probabilities in fp32",
            "flash": "FlashAttention-2 (varlen): no seq² tensor, k/v not repeated",
        }[inputs.attention]
    )
    if inputs.attention_group:
        said.append(
            f"shifted sparse attention: groups of {inputs.attention_group} tokens, a batch × 2 × seq × "
            f"{inputs.attention_group} mask bias per layer in place of batch × seq²"
        )
    stage, method = STAGES[inputs.stage], METHODS[inputs.method]
    if stage.score_head:
        said.append("reward model: a scalar head, no vocabulary-wide logits")
    elif inputs.fused_cross_entropy:
        said.append("loss through trl's fused head: 4096 × 32768 logit tiles, never the full logits")
        if inputs.capacity_gib is None:
            said.append("CPU: trl folds each logit tile with torch ops, holding several fp32 copies of it")
    elif inputs.kernel_cross_entropy:
        chunk = liger_chunk_tokens(step_tokens(inputs), inputs.arch.vocab_size, inputs.arch.hidden_size)
        said.append(
            f"loss through liger-kernel's fused linear cross-entropy: {chunk}-token chunks of logits; the hidden "
            "states' (and a trained head's) gradients kept from the forward, never the full logits"
        )
    elif stage.logit_bytes:
        said.append(
            f"{inputs.stage}: trl's trainer takes the log-probabilities from the full logits, {stage.logit_bytes:g} "
            "bytes per logit at the start of the backward"
        )
    else:
        said.append("unfused loss: full logits upcast to fp32, 12 bytes per logit at the start of the backward")
    said += [KERNELS[name].layers_note for name in inputs.kernels]
    said.append(OPTIMIZERS[inputs.optimizer].estimate_note)
    if inputs.optimizer_settings.layerwise:
        said.append("layer-wise stepping: each weight steps and frees its gradient as soon as it is complete")
    autocast = inputs.precision != "fp32" and inputs.strategy in ("single", "ddp")
    autocast = autocast and OPTIMIZERS[inputs.optimizer].states != "block"
    trains_base = method.trains_all_weights or method.trains_chosen_layers
    if inputs.pure_bf16 and trains_base:
        said.append(
            "pure bf16: what trains is held in bf16 with no fp32 copy; its gradients and the optimizer's moments "
            "are bf16 too"
        )
    elif method.trains_all_weights and autocast:
        said.append(
            f"fp32 weights with {inputs.precision} autocast: a {inputs.precision} copy of each matrix lives "
            "from its forward to its backward"
        )
    if method.has_adapter and not method.quantizes and autocast:
        said.append(
            f"peft's fp32 adapter under autocast: each adapted layer keeps its own {inputs.precision} copy of its input"
        )
    if inputs.oft is not None and method.has_adapter:
        said.append(
            "OFT: each adapted layer keeps its input for the rotation's gradient, and the block matrices of its "
            "rotation (the Cayley–Neumann terms, or the exact solve's) from the forward to the backward"
        )
    if inputs.gradient_checkpointing:
        said.append("gradient checkpointing: each block keeps its input and one block is recomputed at a time")
    if method.quantizes and _keeps_int8_inputs(inputs):
        said.append("LLM.int8 layers keep their inputs on the autograd context, out of checkpointing's reach")
    said.append(
        "gradients of earlier micro-batches live through each forward (accumulation)"
        if inputs.gradient_accumulation
        else "one micro-batch per optimizer step: gradients are freed after each step"
    )
    if inputs.strategy == "ddp":
        said.append("DDP keeps flat gradient buckets beside the gradients (gradient_as_bucket_view off)")
    if inputs.strategy in ("zero3", "fsdp"):
        said.append("the layer in use and one prefetched layer are gathered whole")
    if inputs.offload != "none":
        said.append(f"offload '{inputs.offload}': those states live in host memory")
    if stage.estimate_note:
        said.append(stage.estimate_note)
    return tuple(said)
