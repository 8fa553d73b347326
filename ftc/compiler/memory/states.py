"""Model states: how a run holds its weights, gradients and optimizer moments, and what sharding leaves per device.

Byte counts follow what ftc's runtime and the libraries under it really do, not a textbook rule:

- full fine-tuning on one device or under DDP keeps fp32 weights and lets autocast compute in bf16/fp16
  (`ftc/runtime/model/loading.py`), so there is no separate master copy, and autocast holds a half-precision copy
  of every matrix from the forward until its backward;
- LoRA and OFT keep the frozen base in the compute dtype and peft upcasts the adapter to fp32
  (`autocast_adapter_dtype`); QLoRA's adapter is cast back to bf16 by trl;
- train.pure_bf16 holds what full and freeze train in bf16 itself: no fp32 copy, no autocast copies, and the
  gradients and AdamW's moments in bf16 with it;
- DeepSpeed ZeRO with bf16/fp16 casts the whole module to half precision and keeps the fp32 master copy
  and the moments in the optimizer's partitions; FSDP keeps the fp32 shards as the weights themselves and
  gathers half-precision copies one unit at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftc.compiler.model_shapes import Architecture
from ftc.compiler.module_tree import FreezeSelection, freeze_selection
from ftc.compiler.params import (
    OftBlocks,
    ParameterCount,
    adapted_layers,
    count_parameters,
    decoder_linears,
    lora_parameters,
    oft_parameters,
)
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import DEFAULT_BACKEND, QUANTIZERS, QuantScheme, chosen_scheme, linear_bytes
from ftc.stages import STAGES

GIB = 1024**3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

# bitsandbytes 8-bit Adam: two uint8 moments plus an fp32 absmax per block of 256 values each. Tensors
# under 4096 values (norms, biases) keep fp32 moments, which the count below ignores as negligible.
ADAM_8BIT_BYTES = 2 * (1 + 4 / 256)
# BAdam's active block: an fp32 copy of its weights, their fp32 gradient and AdamW's two fp32 moments.
BLOCK_COPY_BYTES = 4


@dataclass(frozen=True)
class OptimizerSettings:
    """What the memory of an optimizer depends on beyond its name (the spec's [galore], [apollo], [badam])."""

    rank: int = 0  # low-rank optimizers: the projection's rank
    targets: str | tuple[str, ...] = "all"  # low-rank optimizers: the decoder's linear layers projected
    layerwise: bool = False  # each weight steps inside the backward: one gradient lives at a time


@dataclass(frozen=True)
class Holding:
    """How a run holds and computes its tensors: the dtype facts everything else is built on."""

    act: int  # bytes of a matmul output: the compute dtype
    residual: int  # bytes of the hidden states passed between blocks (fp32 when the embeddings are fp32)
    trainable: int  # bytes per trainable base weight as held on the device
    frozen: int  # bytes per frozen, unquantized weight
    adapter: int  # bytes per adapter weight (LoRA, OFT)
    autocast_copies: bool  # fp32-held matrices computed in half precision: autocast keeps a copy of each
    sharded_half: bool  # DeepSpeed/FSDP: the model computes from half-precision weights it holds or gathers


def holding(
    method: str,
    precision: str,
    strategy: str,
    stage: str = "sft",
    optimizer: str = "adamw",
    quantizer: str | None = None,
    pure_half: bool = False,
) -> Holding:
    """`quantizer`: qlora's backend (ftc.quantizers); None is the default one. `pure_half` (train.pure_bf16): full
    and freeze hold their trained weights in the compute dtype, with no fp32 copy."""
    trains = METHODS[method]
    act = DTYPE_BYTES[precision]
    half = act == 2
    if pure_half and (trains.trains_all_weights or trains.trains_chosen_layers):
        # Nothing is fp32, so autocast has nothing to copy; the residual stream follows the bf16 embeddings.
        return Holding(act, act, act, act, 4, autocast_copies=False, sharded_half=False)
    if OPTIMIZERS[optimizer].own_fp32_copy:
        # BAdam holds the model in the compute dtype and gives only the active block an fp32 copy to step.
        return Holding(act, act, act, act, 4, autocast_copies=False, sharded_half=False)
    deepspeed = strategy.startswith("zero")
    if deepspeed and half:
        # DeepSpeed's bf16/fp16 engine casts every parameter, adapters included, to half precision.
        return Holding(act, act, act, act, act, autocast_copies=False, sharded_half=True)
    if strategy == "fsdp" and half:
        # FSDP mixed precision gathers half-precision copies; the fp32 shards are the master weights.
        trainable = act if trains.has_adapter else 4
        adapter = act if trains.quantizes else 4
        return Holding(act, act, trainable, act, adapter, autocast_copies=False, sharded_half=True)
    if trains.trains_all_weights:
        return Holding(act, 4, 4, 4, 4, autocast_copies=half, sharded_half=False)
    if trains.trains_chosen_layers:
        # The trained top layers are upcast to fp32 (as LLaMA-Factory does); the frozen rest stays half.
        return Holding(act, act, 4, act, 4, autocast_copies=half, sharded_half=False)
    # Some of trl's trainers cast a quantized model's adapter to bf16 (the stage's record says which), when the
    # backend marks the model as loaded in bits; peft upcasts a plain LoRA adapter to fp32.
    marked = QUANTIZERS[quantizer or DEFAULT_BACKEND].marks_loaded_in_bits
    adapter = 2 if trains.quantizes and marked and STAGES[stage].bf16_quantized_adapter else 4
    return Holding(act, act, act, act, adapter, autocast_copies=half and adapter != act, sharded_half=False)


@dataclass(frozen=True)
class ImageSide:
    """What of an image+text model's image side trains ([vision]): each part trains whole or not at all."""

    tower: bool = False
    projector: bool = True
    language: bool = True  # False: [vision] projector_only, the language model frozen whatever the method

    def trainable(self, count: ParameterCount) -> int:
        return count.vision * self.tower + count.projector * self.projector


@dataclass(frozen=True)
class States:
    """Bytes each device holds for the model's states, before activations."""

    weights: float  # parameters as held (shards under ZeRO-3/FSDP, quantized for qlora)
    gathered: float  # ZeRO-3/FSDP: the unsharded layers being used and prefetched
    autocast_copies: float  # half-precision copies autocast keeps of fp32 decoder matrices, forward to backward
    adapters: float
    gradients: float  # all gradients of the trainable parameters, as held after the backward
    head_gradient: float  # the output head's gradient alone: it exists from the start of the backward
    ddp_buckets: float  # DDP's flat gradient buckets, a second copy of the gradients that lives all run
    optimizer: float
    master_weights: float
    host: float  # states moved to host memory by offloading
    largest_matrix: int  # elements of the widest decoder linear layer (transients are sized by it)


def trainable_parameters(
    arch: Architecture,
    method: str,
    freeze_layers: int,
    freeze_modules: str | tuple[str, ...] = "all",
    freeze_extra: tuple[str, ...] = (),
    added_blocks: tuple[int, ...] = (),
) -> int:
    """Base parameters the optimizer updates: all, none (LoRA trains its adapter), or what freeze names
    (in [llama_pro]'s `added_blocks` rather than the top layers, where there are some)."""
    if METHODS[method].trains_all_weights:
        return count_parameters(arch).total
    if METHODS[method].trains_chosen_layers:
        return freeze_selection(arch, freeze_layers, freeze_modules, freeze_extra, added_blocks).parameters
    return 0


def model_states(
    arch: Architecture,
    method: str,
    precision: str,
    strategy: str,
    world_size: int,
    offload: str,
    optimizer: str,
    quantization: QuantScheme | int | None,
    lora_rank: int,
    adapter_targets: str | tuple[str, ...],
    freeze_layers: int,
    freeze_modules: str | tuple[str, ...] = "all",
    freeze_extra: tuple[str, ...] = (),
    stage: str = "sft",
    oft: OftBlocks | None = None,
    settings: OptimizerSettings = OptimizerSettings(),
    added_blocks: tuple[int, ...] = (),
    image_side: ImageSide | None = None,
    pure_half: bool = False,
) -> States:
    """`oft`: the adapter is OFT's rotations, not LoRA's (lora_rank then goes unread). `added_blocks`: [llama_pro]'s
    copies in `arch`, the only blocks that train (freeze) or carry LoRA. `image_side`: what of an image+text
    model's tower and projector trains whole, whatever the method does to the language model. `pure_half`:
    train.pure_bf16 (see `holding`)."""
    trains = METHODS[method]
    if trains.quantizes and not isinstance(quantization, QuantScheme):  # bits alone: the default backend's
        quantization = chosen_scheme(DEFAULT_BACKEND, quantization, None)
    held = holding(
        method,
        precision,
        strategy,
        stage,
        optimizer=optimizer,
        quantizer=quantization.backend if trains.quantizes else None,
        pure_half=pure_half,
    )
    count = count_parameters(arch)
    adapted_blocks = len(added_blocks) if added_blocks else None
    adapter = adapter_parameters(arch, lora_rank, adapter_targets, oft, adapted_blocks) if trains.has_adapter else 0
    freeze = None
    if trains.trains_chosen_layers:
        freeze = freeze_selection(arch, freeze_layers, freeze_modules, freeze_extra, added_blocks)
    base_trainable = freeze.parameters if freeze else trainable_parameters(arch, method, freeze_layers)
    if image_side is not None and arch.vision is not None:
        # the method's rule covers the language model; the image side trains as [vision] says
        if not image_side.language:
            base_trainable = 0
        elif trains.trains_all_weights:
            base_trainable -= count.vision + count.projector
        base_trainable += image_side.trainable(count)
    trainable = base_trainable + adapter
    frozen = count.total - base_trainable
    linear_elements = sum(linear.in_features * linear.out_features * linear.count for linear in decoder_linears(arch))

    frozen_bytes = frozen * held.frozen
    if trains.quantizes:
        frozen_bytes = (frozen - linear_elements) * held.act + _quantized_linears(arch, quantization, held.act)
    weights = base_trainable * held.trainable + frozen_bytes
    adapters = adapter * held.adapter
    grad_bytes = held.adapter if trains.has_adapter else held.trainable
    gradients = base_trainable * grad_bytes + adapter * held.adapter
    optimizer_bytes = optimizer_state(arch, optimizer, held, strategy, trainable, bool(adapter), settings)
    # DeepSpeed in half precision updates an fp32 master copy of what trains; elsewhere the weights are fp32.
    master = trainable * 4 if held.sharded_half and strategy.startswith("zero") else 0.0
    if OPTIMIZERS[optimizer].states == "block":
        gradients, master = _block_gradients_and_copy(count, held)
    elif settings.layerwise:
        # Each weight steps as its gradient is complete, then frees it: the widest weight's is the most alive.
        gradients = _widest_weight(arch, count) * grad_bytes

    autocast = 0.0  # the head's copy depends on the loss path: see memory_logits
    if held.autocast_copies:
        # Every trained matrix in the blocks, routed experts included, is cast once and cached.
        trained = linear_elements + count.experts if freeze is None else freeze.matrices
        autocast = adapter * held.act if trains.has_adapter else trained * held.act
        if oft is not None and trains.has_adapter:
            autocast = 0.0  # no matmul reads OFT's weights: the rotations built from them are activations

    head_gradient = arch.vocab_size * arch.hidden_size * grad_bytes if head_trains(method, freeze) else 0.0
    if OPTIMIZERS[optimizer].states == "block":
        head_gradient = 0.0  # BAdam leaves the embeddings and the head as they are

    shards = max(world_size, 1)
    gathered = 0.0
    if strategy in ("zero1", "zero2", "zero3", "fsdp"):
        optimizer_bytes /= shards
        master /= shards
    if strategy in ("zero2", "zero3", "fsdp"):
        gradients /= shards
        head_gradient /= shards
    if strategy in ("zero3", "fsdp"):
        weights /= shards
        adapters /= shards
        # The layer being computed and the one prefetched are gathered whole, in the compute dtype.
        gathered = 2 * _largest_unit(count) * held.act
    ddp_buckets = gradients if strategy == "ddp" else 0.0

    host = 0.0
    if offload in ("optimizer", "optimizer+params"):
        host += optimizer_bytes + master
        if strategy.startswith("zero"):
            host += trainable * 4 / shards  # ZeRO-Offload steps on fp32 gradient partitions in host memory
        optimizer_bytes = master = 0.0
    if offload == "optimizer+params":
        host += weights + gradients
        weights = gradients = 0.0

    return States(
        weights=weights,
        gathered=gathered,
        autocast_copies=autocast,
        adapters=adapters,
        gradients=gradients,
        head_gradient=head_gradient,
        ddp_buckets=ddp_buckets,
        optimizer=optimizer_bytes,
        master_weights=master,
        host=host,
        largest_matrix=max(linear.in_features * linear.out_features for linear in decoder_linears(arch)),
    )


def adapter_parameters(
    arch: Architecture,
    lora_rank: int,
    targets: str | tuple[str, ...],
    oft: OftBlocks | None,
    blocks: int | None = None,
) -> int:
    """The adapter's trained values: OFT's rotations where `oft` is given, else LoRA's A and B matrices (on `blocks`
    blocks only, [llama_pro]'s copies, where given)."""
    if oft is not None:
        return oft_parameters(arch, oft, targets)
    return lora_parameters(arch, lora_rank, targets, blocks)


def head_trains(method: str, freeze: FreezeSelection | None) -> bool:
    """Whether the output head's weight trains: in full training, and where freeze's extra modules reach it."""
    return METHODS[method].trains_all_weights or (freeze is not None and freeze.head)


def optimizer_state(
    arch: Architecture,
    optimizer: str,
    held: Holding,
    strategy: str,
    trainable: int,
    adapted: bool,
    settings: OptimizerSettings = OptimizerSettings(),
) -> float:
    """Bytes of optimizer state for `trainable` parameters, before any sharding divides them."""
    states = OPTIMIZERS[optimizer].states
    if states == "adam_8bit":
        return trainable * ADAM_8BIT_BYTES
    if strategy.startswith("zero") and held.sharded_half:
        return trainable * 8.0  # DeepSpeed steps its fp32 master partition
    # torch's AdamW keeps both moments in the parameter's dtype: a bf16 adapter gets bf16 moments.
    value = held.adapter if adapted else held.trainable
    adam = 2.0 * value
    if states in ("low_rank", "low_rank_8bit"):
        moment = ADAM_8BIT_BYTES / 2 if states == "low_rank_8bit" else value
        rest_moments = 2 * moment
        projected, low_rank = 0, 0.0
        for linear in adapted_layers(arch, settings.targets, "the optimizer's target"):
            shorter, longer = sorted((linear.in_features, linear.out_features))
            rank = min(settings.rank, shorter)
            projected += linear.in_features * linear.out_features * linear.count
            # Two moments of the projected gradient (rank × the longer side); the projection (rank × the shorter
            # side) is kept in the gradient's dtype.
            low_rank += linear.count * (2 * rank * longer * moment + rank * shorter * value)
        return low_rank + (trainable - projected) * rest_moments
    if states == "block":
        return count_parameters(arch).largest_layer * 2 * BLOCK_COPY_BYTES  # the active block's two fp32 moments
    if states == "per_block_second_moment":
        return trainable * value + _adam_mini_second_moments(arch) * value
    if states == "one_momentum":
        hidden = _hidden_matrices(arch)
        return hidden * value + (trainable - hidden) * adam
    return trainable * adam


def _adam_mini_second_moments(arch: Architecture) -> int:
    """Adam-mini's second moments: one per query/key head, per output neuron of the other matrices, per token
    of the embeddings and head, one per norm weight."""
    head_elements = arch.hidden_size * arch.head_dim  # Adam-mini reads a head as hidden × hidden / heads values
    count = 0
    for linear in decoder_linears(arch):
        elements = linear.in_features * linear.out_features
        per_head = linear.name in ("q_proj", "k_proj")
        count += linear.count * (elements // head_elements if per_head else linear.out_features)
    tokens = arch.vocab_size * (2 if count_parameters(arch).head else 1)
    norms = 2 * arch.num_layers + 1  # one value per norm weight (QK-norms' few more are negligible)
    return count + tokens + norms


def _hidden_matrices(arch: Architecture) -> int:
    """Elements of the 2-D weights inside the decoder blocks: what Muon steps (routers too; routed experts are
    3-D, the embeddings and head step with AdamW)."""
    linears = sum(linear.in_features * linear.out_features * linear.count for linear in decoder_linears(arch))
    return linears + count_parameters(arch).router


def _block_gradients_and_copy(count: ParameterCount, held: Holding) -> tuple[float, float]:
    """BAdam's gradients (the active block's, in the compute dtype, and of its fp32 copy) and its fp32 copy."""
    block = count.largest_layer
    return block * held.act + block * BLOCK_COPY_BYTES, block * BLOCK_COPY_BYTES


def _widest_weight(arch: Architecture, count: ParameterCount) -> int:
    widest = max(linear.in_features * linear.out_features for linear in decoder_linears(arch))
    return max(widest, count.embedding, count.head)


def frozen_copy_bytes(arch: Architecture, precision: str) -> float:
    """A frozen model held for inference (DPO's reference, PPO's reward model) in the compute dtype."""
    return count_parameters(arch).total * DTYPE_BYTES[precision]


def _quantized_linears(arch: Architecture, scheme: QuantScheme, act: int) -> float:
    """The decoder's linear layers as the backend stores them (ftc.quantizers); the head and embeddings stay
    unquantized. `act`: bytes of the compute dtype, which some backends keep their scales in."""
    return sum(
        linear_bytes(scheme, linear.in_features, linear.out_features, act) * linear.count
        for linear in decoder_linears(arch)
    )


def _largest_unit(count: ParameterCount) -> int:
    # FSDP wraps each decoder block; the embedding and head form their own unit at the start and end.
    return max(count.largest_layer, count.embedding, count.head)
