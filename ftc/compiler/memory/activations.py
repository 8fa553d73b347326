"""Activations: the tensors autograd keeps from the forward for the backward, counted op by op.

Each count names the tensor a transformers decoder block really saves (checked by tracking live
storages through real training steps, `benchmarks/memory_accuracy.py`):

- an RMSNorm keeps its input as fp32 (the input itself, or its fp32 upcast when the input is half), and
  the normalized tensor when its weight trains;
- a linear layer keeps its input only when its own weight trains; under autocast each linear casts its
  input separately, so q, k and v keep three half-precision copies of one fp32 input;
- a LoRA layer keeps the input of its A matrix: a copy of its own when peft's fp32 adapter runs under
  autocast, the shared input otherwise; and the rank-wide output of A;
- an OFT layer keeps its input likewise (for the rotation's gradient), and the block matrices of its
  rotation: the Cayley–Neumann series keeps its skew matrix, its powers and the result (under autocast a
  half-precision cast of each operand of each product besides), the exact transform its solve's;
- SDPA with a padding mask (transformers' default for padded batches) gets k and v repeated to every
  head (its GQA path needs a mask-free call), turns the boolean mask into a float bias of
  batch × seq² per layer and keeps it for the backward; eager attention keeps the fp32 softmax output
  (and its half-precision copy) of batch × heads × seq²; FlashAttention-2 keeps neither;
- LongLoRA's shifted sparse attention (ftc.runtime.model.shift_attention) copies q, k and v into groups (k and v
  at every head), one layout per half of the heads, and masks each group: the bias it keeps is
  batch × 2 × seq × group per layer, and its output is copied back into the row for o_proj.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ftc.compiler.memory.states import Holding
from ftc.compiler.model_families import family_of
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import OftBlocks, decoder_linears, lora_target_modules
from ftc.methods import METHODS


@dataclass(frozen=True)
class Step:
    """What decides which tensors one micro-batch keeps."""

    arch: Architecture
    held: Holding
    method: str  # full | freeze | lora | qlora | oft
    rows: int  # sequences in one forward: the micro-batch, doubled for chosen/rejected pairs
    seq_len: int
    attention: str  # eager | sdpa | flash
    checkpointing: bool
    adapted: frozenset[str]  # linear layers with an adapter, by our names and the names they answer to
    lora_rank: int
    lora_dropout: float
    # blocks whose own weights train: all for full, freeze's (the top N, or [llama_pro]'s copies), none for LoRA
    trained_blocks: frozenset[int]
    trained_outside: frozenset[str] = frozenset()  # freeze's extra modules that train: "embedding", "head"
    adapted_blocks: frozenset[int] | None = None  # LoRA only in these blocks ([llama_pro]'s copies); None: in all
    on_cpu: bool = False  # the CPU's dropout keeps its mask in the input's dtype, CUDA's as booleans
    int8_base: bool = False  # LLM.int8 linear layers keep their input on the autograd context, whatever happens
    oft: OftBlocks | None = None  # the adapter is OFT's rotations (lora_rank and lora_dropout go unread)
    attention_group: int | None = None  # train.shift_attention's tokens per group; None: every row attends whole

    @property
    def tokens(self) -> int:
        return self.rows * self.seq_len

    @property
    def head_trains(self) -> bool:
        return METHODS[self.method].trains_all_weights or "head" in self.trained_outside

    def layer_trains(self, index: int) -> bool:
        return index in self.trained_blocks

    def first_saving_layer(self) -> int:
        """Blocks below this one need no gradient at all, so they keep nothing."""
        method = METHODS[self.method]
        if method.trains_chosen_layers and "embedding" not in self.trained_outside:
            return min(self.trained_blocks, default=self.arch.num_layers)
        # Without checkpointing nothing asks the blocks below the lowest adapter for a gradient (see below).
        if method.has_adapter and self.adapted_blocks is not None and not self.checkpointing:
            return min(self.adapted_blocks, default=self.arch.num_layers)
        return 0

    def input_needs_grad(self, index: int) -> bool:
        """Whether the gradient flows into block `index` from below it."""
        if METHODS[self.method].trains_all_weights or "embedding" in self.trained_outside:
            return True  # the embedding trains
        if self.checkpointing and METHODS[self.method].has_adapter:
            return True  # trl makes the embedding output require grad so checkpointed blocks recompute
        return index > self.first_saving_layer()


def adapted_linears(arch: Architecture, targets: str | tuple[str, ...]) -> frozenset[str]:
    selected = set(lora_target_modules(arch, targets))
    names: set[str] = set()
    for linear in decoder_linears(arch):
        if linear.name in selected:
            names |= linear.answers_to
    return frozenset(names)


def saved_by_layer(step: Step, index: int) -> float:
    """Bytes block `index` keeps for the backward when nothing is checkpointed."""
    if index < step.first_saving_layer():
        return 0.0
    if step.adapted_blocks is not None and index not in step.adapted_blocks:
        step = replace(step, adapted=frozenset())
    arch, held = step.arch, step.held
    trains = step.layer_trains(index)
    hidden, q, kv = arch.hidden_size, arch.q_width, arch.kv_width
    family = family_of(arch)
    norm_out = _norm_output_bytes(held, trains)

    per_token = _norm(arch, held, hidden, input_needs_grad=step.input_needs_grad(index), weight_trains=trains)
    attention_inputs = ("qkv_proj",) if family.fused_qkv else ("q_proj", "k_proj", "v_proj")
    per_token += _linear_inputs(step, norm_out, hidden, attention_inputs, trains)
    if arch.qk_norm != "none":
        per_token += 4 * (q + kv) + (_norm_output_bytes(held, trains) * (q + kv) if trains else 0)
    grouped = step.attention_group is not None
    core, per_key = (
        _shifted_attention_core(arch, held.act) if grouped else _attention_core(arch, held.act, step.attention)
    )
    # o_proj reads the attention's output, which the attention already keeps (only copies of it count), unless
    # the groups are copied back into the row first.
    per_token += core + _linear_inputs(step, held.act, q, ("o_proj",), trains, kept_already=not grouped)
    per_token += _mlp_half(step, index)
    return step.tokens * per_token + step.tokens * keys_per_query(step) * per_key + oft_rotations(step)


def keys_per_query(step: Step) -> int:
    """Key positions each query's attention bias spans: the whole row, or its group in each half of the heads."""
    if step.attention_group is None:
        return step.seq_len
    return 2 * min(step.attention_group, step.seq_len)


def oft_rotations(step: Step) -> float:
    """Bytes of the rotation matrices one block's OFT layers keep for the backward: a batch-free term.

    Counted from what autograd saves in peft's OFT forward (0.21): the series I + 2Q + 2Q² + … + Qⁿ⁻¹ keeps
    Q, its powers up to Qⁿ⁻³ (one at least) and the result; under autocast each product saves half-precision
    casts of its operands instead. A shared rotation is built once and repeated to every block at the end.
    """
    if step.oft is None:
        return 0.0
    total = 0.0
    for linear in decoder_linears(step.arch):
        if linear.name in step.adapted:
            blocks, size = step.oft.split(linear)
            whole = blocks * size * size  # elements of one stack of the layer's block matrices
            built = size * size if step.oft.shared else whole  # before the shared rotation is repeated
            total += linear.count * _rotation_bytes(step.oft.neumann_terms, step.held, whole, built)
    # spread evenly over the blocks: exact for a uniform stack, the mean for one mixing dense and sparse blocks
    return total / step.arch.num_layers


def _rotation_bytes(terms: int, held: Holding, whole: int, built: int) -> float:
    autocast = held.adapter != held.act
    if terms == 0:  # the exact transform: the solve's operands and result in fp32, cast for the product
        return 3 * 4 * built + (held.act * whole if autocast else 0) + (4 * whole if built != whole else 0)
    kept = 1 if terms == 2 else max(terms - 1, 3)  # Q, Q²…Qⁿ⁻³ and the result; the result alone for I + 2Q
    if autocast:
        kept = 2 * kept - 1  # each product's two half-precision operands in place of the fp32 ones
        return held.act * ((kept - 1) * built + whole)
    return held.adapter * ((kept - 1) * built + whole)


def _mlp_half(step: Step, index: int) -> float:
    """Bytes per token the block keeps from its pre-MLP norm on: the norms after attention and the MLP."""
    arch, held = step.arch, step.held
    trains = step.layer_trains(index)
    hidden = arch.hidden_size
    norm_out = _norm_output_bytes(held, trains)
    # The block's other norms (a pre-MLP norm; Gemma 2's post-norms) read tensors that need gradients.
    per_token = (arch.norms_per_layer - 1) * _norm(arch, held, hidden, input_needs_grad=True, weight_trains=trains)
    if arch.is_sparse(index) and arch.moe is not None:
        moe = arch.moe
        per_token += 4 * moe.num_experts  # router logits kept by the softmax
        # each routed copy of a token: its gathered input and its expert's tensors. LoRA never reaches the
        # experts: transformers stacks them into 3-D tensors, not linear layers.
        unadapted = replace(step, adapted=frozenset())
        expert = _mlp(unadapted, norm_out, hidden, moe.expert_intermediate_size, trains) + 2 * held.act * hidden
        per_token += moe.experts_per_token * expert
        if moe.shared_expert_intermediate_size:
            per_token += _mlp(step, norm_out, hidden, moe.shared_expert_intermediate_size, trains)
        return per_token
    return per_token + _mlp(step, norm_out, hidden, arch.intermediate_size, trains)


def saved_layer_inputs(step: Step) -> float:
    """Under checkpointing each block keeps its input hidden states until its recompute.

    bitsandbytes' 8-bit matmul stores its input as a plain attribute of the autograd context, out of
    checkpointing's reach, so with LLM.int8 every block also keeps the inputs of its linear layers.
    """
    arch = step.arch
    saving = arch.num_layers - step.first_saving_layer()
    per_token = arch.hidden_size * step.held.residual
    if step.int8_base:
        per_token += step.held.act * (2 * arch.hidden_size + arch.q_width + arch.intermediate_size)
    return saving * step.tokens * per_token


def shared_inputs(step: Step) -> float:
    """Tensors every block reads: the rotary cos/sin, and under checkpointing the attention mask."""
    rotary = 2 * step.tokens * step.arch.head_dim * step.held.residual
    if not step.checkpointing:
        return rotary  # the mask only feeds ops that do not keep it, and dies with the forward
    mask = {"sdpa": 1, "eager": step.held.act, "flash": 0}[step.attention]  # bool for SDPA, additive for eager
    return rotary + mask * step.rows * step.seq_len**2


def saved_before_head(step: Step) -> float:
    """The final norm's saved input (the head's own input is counted with the logits)."""
    if not step.arch.final_norm:
        return 0.0
    weight_trains = METHODS[step.method].trains_all_weights
    per_token = _norm(step.arch, step.held, step.arch.hidden_size, True, weight_trains=weight_trains)
    return step.tokens * per_token


def layer_backward_transient(step: Step, largest_matrix: int) -> float:
    """What the top block's backward holds beyond the saved activations, at its worst moment.

    The MLP's backward comes first, with everything still saved: gradients of its wide tensors. The
    attention's backward comes after the block's MLP tensors are freed; eager attention then holds the
    gradients of the probabilities and of the scores, in fp32.
    """
    arch, act = step.arch, step.held.act
    top = arch.num_layers - 1
    width = arch.intermediate_size
    if arch.is_sparse(top) and arch.moe is not None:
        width = arch.moe.experts_per_token * arch.moe.expert_intermediate_size
    mlp = 3 * step.tokens * width * act
    attention = 0.0
    if step.attention == "eager":
        scores = 2 * 4 * step.rows * arch.num_attention_heads * step.seq_len**2
        attention = scores - step.tokens * _mlp_half(step, top)
    transient = max(mlp, attention)
    if step.held.autocast_copies and not METHODS[step.method].has_adapter:
        transient += largest_matrix * act  # a weight's gradient in half precision before it lands in fp32
    if METHODS[step.method].quantizes:
        transient += largest_matrix * act  # the quantized layers dequantize one weight at a time
    return transient


def _norm_output_bytes(held: Holding, trains: bool) -> int:
    # A norm's output takes the wider of its input's dtype and its weight's: an fp32 weight makes it fp32.
    weight = held.trainable if trains else held.frozen
    return max(held.residual, weight)


def _norm(arch: Architecture, held: Holding, width: int, input_needs_grad: bool, weight_trains: bool) -> float:
    if arch.norm == "rms":
        kept = 4 * width if input_needs_grad else 0  # the input as fp32 (pow and mul both read it)
        if weight_trains:
            kept += (4 if held.residual == 4 else held.act) * width  # the normalized input, for the weight's grad
        return kept
    # LayerNorm keeps its input in its own dtype, and only small per-token statistics besides.
    return held.residual * width if (input_needs_grad or weight_trains) else 0


def _linear_inputs(
    step: Step, input_bytes: int, width: int, names: tuple[str, ...], trains: bool, kept_already: bool = False
) -> float:
    """What the linear layers reading one input keep of it: shared, per-layer copies, LoRA's rank-wide outputs."""
    held = step.held
    shared, copies = False, 0.0
    for name in names:
        if step.int8_base:
            shared = True  # bitsandbytes' 8-bit matmul keeps its input for the backward
        if trains:
            if input_bytes == held.act:
                shared = True
            else:
                copies += held.act * width  # autocast casts the fp32 input once per layer
        elif name in step.adapted and step.oft is not None:
            # the rotation's input: a cast of its own where the adapter's dtype differs, else the shared one
            if held.adapter != held.act:
                copies += held.act * width  # peft casts to the fp32 adapter, autocast casts back for the product
            elif input_bytes == held.adapter:
                shared = True
            else:
                copies += held.adapter * width
        elif name in step.adapted:
            if step.lora_dropout > 0:
                # A's input (the dropped-out copy, or autocast's cast of it) and dropout's mask
                mask = held.adapter if step.on_cpu else 1
                copies += (held.act + mask) * width
            elif held.adapter != held.act:
                copies += held.act * width  # peft casts to the fp32 adapter, autocast casts back per layer
            elif input_bytes == held.adapter:
                shared = True
            else:
                copies += held.adapter * width
            copies += step.lora_rank * held.act  # A's output, kept for B's weight gradient
    return (input_bytes * width if shared and not kept_already else 0) + copies


def _attention_core(arch: Architecture, act: int, attention: str) -> tuple[float, float]:
    """(bytes per token, bytes per row and key position) the attention kernel keeps."""
    q, kv, heads = arch.q_width, arch.kv_width, arch.num_attention_heads
    if attention == "flash":
        # q, k, v copied out of the padding for the varlen kernel, its output unpadded and padded again,
        # and the log-sum-exp.
        return act * (3 * q + 2 * kv) + 4 * heads, 0.0
    if attention == "eager":
        # q, and k and v materialised at every head (repeated, or copied by matmul from an expanded view),
        # the output made contiguous for o_proj, and the probabilities: fp32 from the softmax, plus the
        # half-precision copy the second matmul reads.
        probabilities = heads * (4 + (act if act != 4 else 0))
        return act * 4 * q, probabilities
    # SDPA: transformers repeats k and v to every head before a masked call; with one key-value head
    # the repeat is a stride-0 view, with as many as the query heads it is skipped. A fused qkv
    # projection returns one tensor, which stays whole while the kernel keeps v as a view of it.
    copied = 1 < arch.num_key_value_heads < heads
    keys = q if copied else kv
    fused_rest = q + kv if family_of(arch).fused_qkv and not copied else 0
    # q, k and v, its output (also o_proj's input), the log-sum-exp, and the float bias it made of the mask.
    return act * (2 * q + 2 * keys + fused_rest) + 4 * heads, act


def _shifted_attention_core(arch: Architecture, act: int) -> tuple[float, float]:
    """(bytes per token, bytes per row, query and key of its group) shifted sparse attention keeps.

    SDPA keeps the grouped copies of q, k and v (k and v repeated to every head before grouping), its grouped
    output and log-sum-exp, and the float bias of each group's mask; the fused qkv tensor is not kept whole.
    """
    q, heads = arch.q_width, arch.num_attention_heads
    return act * 4 * q + 4 * heads, act


def _mlp(step: Step, input_bytes: int, hidden: int, width: int, trains: bool) -> float:
    family = family_of(step.arch)
    act = step.held.act
    if step.arch.mlp == "plain":
        # up's output (kept by the activation) and the activation's output (down's input)
        inputs = _linear_inputs(step, input_bytes, hidden, ("up_proj",), trains)
        return inputs + act * width + _down_input(step, width, trains)
    names = ("gate_up_proj",) if family.fused_gate_up else ("gate_proj", "up_proj")
    inputs = _linear_inputs(step, input_bytes, hidden, names, trains)
    # gate's output (kept by the activation), the activation's and up's outputs (kept by their product)
    return inputs + 3 * act * width + _down_input(step, width, trains)


def _down_input(step: Step, width: int, trains: bool) -> float:
    """The product of the gated MLP is down_proj's input: kept whole when down trains, else as LoRA keeps it."""
    return _linear_inputs(step, step.held.act, width, ("down_proj",), trains)
