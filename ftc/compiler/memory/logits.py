"""The loss head: the batch × seq × vocab tensors between the last hidden states and the loss.

Two paths, both as measured through real steps:

- the model's own loss (transformers' `ForCausalLMLoss`) materialises the logits, upcasts them to fp32
  and keeps log-softmax's fp32 output; at the start of the backward, nll_loss's gradient and
  log-softmax's gradient (both fp32) join that output: 12 bytes per logit, whatever the compute dtype;
- trl's fused head (`add_fused_lm_head`, which trl's SFT, DPO and KTO trainers install) projects
  4096 tokens × 32768 vocabulary entries at a time into one reusable buffer and accumulates the
  gradients in fp32. On CUDA a Triton kernel folds each tile in place; on the CPU trl folds it with
  torch ops, which hold a few fp32 copies of the tile at once;
- liger-kernel's fused linear cross-entropy (train.kernels = ["liger"], where transformers' Trainer computes
  the loss) projects the tokens a chunk at a time, sized so that a chunk's logits are about as large as the
  hidden states, and computes the gradients of the hidden states and of the head in the forward: they, not
  the logits, are what it keeps for the backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ftc.compiler.memory.activations import Step

# trl's tile: token rows and vocabulary columns per projection (trl.kernels.chunked_logprob and
# trl.trainer.utils); the buffer is allocated this wide even when the vocabulary is narrower.
FUSED_TOKENS_PER_TILE = 4096
FUSED_VOCAB_PER_TILE = 32768
# fp32 copies of a tile trl's CPU fallback holds at its peak, forward and backward (measured: the
# rescaled logits, their exponentials and masks in the forward; probabilities, log-probabilities and
# the gradient's terms in the backward). A half-precision tile adds its fp32 upcast in the forward; in
# the backward the upcast takes the place of a product the fp32 path allocates.
CPU_FORWARD_TILE_COPIES = 3.25
CPU_BACKWARD_TILE_COPIES = 7.25


# Through the model's own loss, trl's entropy and token-accuracy metrics are computed from the logits this
# many positions of a row at a time, in three fp32 copies of them (ftc.runtime.loss_head), during the forward.
METRIC_CHUNK_TOKENS = 128
METRIC_COPIES = 3
# The model's own loss at the start of its backward: log-softmax's fp32 output with the gradients of
# nll_loss and log-softmax (see above), whatever the compute dtype.
MODEL_LOSS_BYTES_PER_LOGIT = 12


@dataclass(frozen=True)
class LossHead:
    saved: float  # kept from the forward through the backward (the head's input, per-token results)
    forward_peak: float  # transient while the loss is computed
    backward_peak: float  # transient while its gradient is computed (the head's weight gradient excluded)
    head_copy: float  # autocast's half-precision copy of an fp32 head, from the forward to its backward


def loss_head(
    step: Step,
    fused: bool,
    on_cpu: bool,
    scalar_head: bool,
    token_metrics: bool = False,
    bytes_per_logit: float | None = None,  # a trainer's own path from the full logits (ftc.stages.Stage.logit_bytes)
    liger: bool = False,
) -> LossHead:
    arch, held = step.arch, step.held
    head_trains = step.head_trains
    hidden_bytes = max(held.residual, held.trainable if head_trains else held.frozen)
    if scalar_head:
        # A reward model scores each sequence with one linear unit: nothing vocabulary-wide.
        return LossHead(step.tokens * arch.hidden_size * hidden_bytes, 0.0, 0.0, 0.0)
    if fused:
        return _fused(step, hidden_bytes, head_trains, on_cpu)
    if liger:
        return _liger(step, hidden_bytes, head_trains)
    logits = step.tokens * arch.vocab_size
    saved = 0.0
    head_copy = 0.0
    if head_trains:
        # The head's weight gradient needs its input: shared when already in the compute dtype, else
        # autocast's copy; and autocast keeps a half-precision copy of the fp32 head itself.
        saved = step.tokens * arch.hidden_size * held.act
        if held.autocast_copies:
            head_copy = arch.vocab_size * arch.hidden_size * held.act
    upcast = 4 if held.act != 4 else 0  # `logits.float()` is a no-op on fp32 logits
    forward_peak = logits * (held.act + upcast + 4)
    if token_metrics:
        forward_peak += min(step.seq_len, METRIC_CHUNK_TOKENS) * arch.vocab_size * METRIC_COPIES * 4
    backward_peak = logits * (bytes_per_logit or MODEL_LOSS_BYTES_PER_LOGIT)
    return LossHead(saved, forward_peak, backward_peak, head_copy)


def _fused(step: Step, hidden_bytes: int, head_trains: bool, on_cpu: bool) -> LossHead:
    arch, act = step.arch, step.held.act
    scored = step.rows * (step.seq_len - 1)  # the last position has no next token
    tile_rows = min(scored, FUSED_TOKENS_PER_TILE)
    buffer = tile_rows * FUSED_VOCAB_PER_TILE * act
    tile = tile_rows * min(arch.vocab_size, FUSED_VOCAB_PER_TILE)
    # trl slices off the last position, which copies the hidden states it then keeps for the backward.
    saved = scored * arch.hidden_size * hidden_bytes + scored * 4 * 4
    cast = tile_rows * arch.hidden_size * act if hidden_bytes != act else 0
    forward_peak = buffer + cast
    # fp32 gradient of the hidden states, and (fp32 head, half compute) a half copy of a vocabulary slice.
    backward_peak = buffer + cast + scored * arch.hidden_size * 4
    if head_trains and step.held.trainable != act:
        backward_peak += FUSED_VOCAB_PER_TILE * arch.hidden_size * act
    if on_cpu:
        forward_peak += (CPU_FORWARD_TILE_COPIES + (1 if act != 4 else 0)) * tile * 4
        backward_peak += CPU_BACKWARD_TILE_COPIES * tile * 4
    return LossHead(saved, forward_peak, backward_peak, 0.0)


def liger_chunk_tokens(tokens: int, vocab: int, hidden: int) -> int:
    """The tokens liger-kernel's fused linear cross-entropy projects at once: the tokens divided by
    ceil(vocab / hidden), rounded up to a power of two (liger_kernel.ops.fused_linear_cross_entropy)."""
    chunk = 1 << (math.ceil(tokens / math.ceil(vocab / hidden)) - 1).bit_length()
    return min(chunk, tokens)


def _liger(step: Step, hidden_bytes: int, head_trains: bool) -> LossHead:
    arch, held = step.arch, step.held
    tokens = step.tokens  # the labels are shifted by padding, so every position is projected
    chunk = liger_chunk_tokens(tokens, arch.vocab_size, arch.hidden_size)
    # Kept from the forward to the backward: the hidden states' gradient (the input's dtype), each token's fp32
    # loss, and the head's weight gradient where the head trains (the weight's dtype).
    saved = tokens * arch.hidden_size * hidden_bytes + tokens * 4
    head_copy = 0.0
    if head_trains:
        saved += arch.vocab_size * arch.hidden_size * held.trainable
        if held.autocast_copies:  # autocast's half-precision copy of the fp32 head, for the chunks' products
            head_copy = arch.vocab_size * arch.hidden_size * held.act
    # One chunk's logits, turned into their gradient in place, and that chunk's product with the head.
    forward_peak = chunk * arch.vocab_size * held.act + chunk * arch.hidden_size * held.act
    # The backward only scales the gradients it kept (in place).
    return LossHead(saved, forward_peak, 0.0, head_copy)
