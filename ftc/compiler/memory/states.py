"""Model states: how a run holds its weights, gradients and optimizer moments, and what sharding leaves per device.

Byte counts follow what ftc's runtime and the libraries under it really do, not a textbook rule:

- full fine-tuning on one device or under DDP keeps fp32 weights and lets autocast compute in bf16/fp16
  (`ftc/runtime/model/loading.py`), so there is no separate master copy, and autocast holds a half-precision copy
  of every matrix from the forward until its backward;
- LoRA keeps the frozen base in the compute dtype and peft upcasts the adapter to fp32
  (`autocast_adapter_dtype`); QLoRA's adapter is cast back to bf16 by trl;
- DeepSpeed ZeRO with bf16/fp16 casts the whole module to half precision and keeps the fp32 master copy
  and the moments in the optimizer's partitions; FSDP keeps the fp32 shards as the weights themselves and
  gathers half-precision copies one unit at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftc.compiler.model_shapes import Architecture
from ftc.compiler.module_tree import FreezeSelection, freeze_selection
from ftc.compiler.params import ParameterCount, count_parameters, decoder_linears, lora_parameters
from ftc.methods import METHODS
from ftc.stages import STAGES

GIB = 1024**3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

# bitsandbytes NF4: half a byte per weight, plus one absmax per block of 64 weights. Double quantization
# stores those absmaxes as 8-bit with an fp32 absmax per 256 of them; without it each absmax is fp32.
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
# LLM.int8: one byte per weight; the fp32 scale per output row is added per matrix below.
INT8_BYTES_PER_WEIGHT = 1.0
# bitsandbytes 8-bit Adam: two uint8 moments plus an fp32 absmax per block of 256 values each. Tensors
# under 4096 values (norms, biases) keep fp32 moments, which the count below ignores as negligible.
ADAM_8BIT_BYTES = 2 * (1 + 4 / 256)


@dataclass(frozen=True)
class Holding:
    """How a run holds and computes its tensors: the dtype facts everything else is built on."""

    act: int  # bytes of a matmul output: the compute dtype
    residual: int  # bytes of the hidden states passed between blocks (fp32 when the embeddings are fp32)
    trainable: int  # bytes per trainable base weight as held on the device
    frozen: int  # bytes per frozen, unquantized weight
    adapter: int  # bytes per LoRA weight
    autocast_copies: bool  # fp32-held matrices computed in half precision: autocast keeps a copy of each
    sharded_half: bool  # DeepSpeed/FSDP: the model computes from half-precision weights it holds or gathers


def holding(method: str, precision: str, strategy: str, stage: str = "sft") -> Holding:
    trains = METHODS[method]
    act = DTYPE_BYTES[precision]
    half = act == 2
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
    # Some of trl's trainers cast a quantized model's adapter to bf16 (the stage's record says which);
    # peft upcasts a plain LoRA adapter to fp32.
    adapter = 2 if trains.quantizes and STAGES[stage].bf16_quantized_adapter else 4
    return Holding(act, act, act, act, adapter, autocast_copies=half and adapter != act, sharded_half=False)


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
    quantization_bits: int | None,
    lora_rank: int,
    lora_targets: str | tuple[str, ...],
    freeze_layers: int,
    freeze_modules: str | tuple[str, ...] = "all",
    freeze_extra: tuple[str, ...] = (),
    stage: str = "sft",
    added_blocks: tuple[int, ...] = (),
) -> States:
    """`added_blocks`: [llama_pro]'s copies in `arch`, the only blocks that train (freeze) or carry LoRA."""
    held = holding(method, precision, strategy, stage)
    trains = METHODS[method]
    count = count_parameters(arch)
    adapted_blocks = len(added_blocks) if added_blocks else None
    lora = lora_parameters(arch, lora_rank, lora_targets, adapted_blocks) if trains.has_adapter else 0
    freeze = None
    if trains.trains_chosen_layers:
        freeze = freeze_selection(arch, freeze_layers, freeze_modules, freeze_extra, added_blocks)
    base_trainable = freeze.parameters if freeze else trainable_parameters(arch, method, freeze_layers)
    trainable = base_trainable + lora
    frozen = count.total - base_trainable
    linear_elements = sum(linear.in_features * linear.out_features * linear.count for linear in decoder_linears(arch))

    frozen_bytes = frozen * held.frozen
    if trains.quantizes:
        frozen_bytes = (frozen - linear_elements) * held.act + _quantized_linears(arch, quantization_bits or 4)
    weights = base_trainable * held.trainable + frozen_bytes
    adapters = lora * held.adapter
    grad_bytes = held.adapter if trains.has_adapter else held.trainable
    gradients = base_trainable * grad_bytes + lora * held.adapter
    optimizer_bytes = trainable * _moment_bytes(optimizer, held, strategy, adapted=bool(lora))
    # DeepSpeed in half precision updates an fp32 master copy of what trains; elsewhere the weights are fp32.
    master = trainable * 4 if held.sharded_half and strategy.startswith("zero") else 0.0

    autocast = 0.0  # the head's copy depends on the loss path: see memory_logits
    if held.autocast_copies:
        # Every trained matrix in the blocks, routed experts included, is cast once and cached.
        trained = linear_elements + count.experts if freeze is None else freeze.matrices
        autocast = lora * held.act if trains.has_adapter else trained * held.act

    head_gradient = arch.vocab_size * arch.hidden_size * grad_bytes if head_trains(method, freeze) else 0.0

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


def head_trains(method: str, freeze: FreezeSelection | None) -> bool:
    """Whether the output head's weight trains: in full training, and where freeze's extra modules reach it."""
    return METHODS[method].trains_all_weights or (freeze is not None and freeze.head)


def _moment_bytes(optimizer: str, held: Holding, strategy: str, adapted: bool) -> float:
    """Bytes of optimizer state per trained parameter."""
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return ADAM_8BIT_BYTES
    if strategy.startswith("zero") and held.sharded_half:
        return 8.0  # DeepSpeed steps its fp32 master partition
    # torch's AdamW keeps both moments in the parameter's dtype: a bf16 adapter gets bf16 moments.
    return 2.0 * (held.adapter if adapted else held.trainable)


def frozen_copy_bytes(arch: Architecture, precision: str) -> float:
    """A frozen model held for inference (DPO's reference, PPO's reward model) in the compute dtype."""
    return count_parameters(arch).total * DTYPE_BYTES[precision]


def _quantized_linears(arch: Architecture, bits: int) -> float:
    """bitsandbytes storage of the decoder's linear layers; the head and embeddings stay unquantized."""
    total = 0.0
    for linear in decoder_linears(arch):
        elements = linear.in_features * linear.out_features * linear.count
        if bits == 4:
            total += elements * NF4_BYTES_PER_WEIGHT
        else:
            total += elements * INT8_BYTES_PER_WEIGHT + linear.out_features * linear.count * 4
    return total


def _largest_unit(count: ParameterCount) -> int:
    # FSDP wraps each decoder block; the embedding and head form their own unit at the start and end.
    return max(count.largest_layer, count.embedding, count.head)
