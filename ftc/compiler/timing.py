"""A time estimate from FLOPs: tokens per second at a stated utilisation of the hardware's peak."""

from __future__ import annotations

from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import count_parameters
from ftc.compiler.plan import TimeEstimate
from ftc.methods import METHODS

# Model FLOPs utilisation a tuned fine-tuning run reaches on one node; stated in every estimate.
UTILISATION = 0.40


def flops_per_token(
    arch: Architecture, method: str, seq_len: int, gradient_checkpointing: bool, attention_group: int | None = None
) -> float:
    """Training FLOPs per token: the forward, its backward, and a second forward when recomputing.

    The forward costs 2 FLOPs per active parameter plus causal attention (scores and mix, half the
    seq × seq square; with shifted sparse attention, half of each group's square). Full training's
    backward costs twice the forward (input and weight gradients); a frozen base only passes input
    gradients back, about one forward.
    """
    active = count_parameters(arch).active
    span = seq_len if attention_group is None else min(attention_group, seq_len)  # the keys a query may reach
    attention = 2 * arch.num_layers * span * arch.q_width  # 4·L·span·d per token, halved for causal masking
    forward = 2 * active + attention
    backward = 2 * forward if METHODS[method].trains_all_weights else forward
    return forward + backward + (forward if gradient_checkpointing else 0)


def estimate_time(
    arch: Architecture,
    method: str,
    seq_len: int,
    gradient_checkpointing: bool,
    world_size: int,
    peak_tflops: float,
    tokens_in_run: int | None,
    attention_group: int | None = None,
) -> TimeEstimate:
    flops = flops_per_token(arch, method, seq_len, gradient_checkpointing, attention_group)
    rate = world_size * peak_tflops * 1e12 * UTILISATION / flops
    # A run set in epochs has no token count until its data is read: then only the rate is known.
    hours = round(tokens_in_run / rate / 3600, 3) if tokens_in_run else None
    return TimeEstimate(
        tokens_per_second=round(rate, 1),
        hours=hours,
        gpu_hours=round(hours * world_size, 3) if hours is not None else None,
        utilisation=UTILISATION,
    )
