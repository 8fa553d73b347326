"""The arithmetic of PPO on token sequences, as plain torch functions: masked means, KL estimators,
per-token rewards, GAE, whitening, and the clipped policy and value losses.

Every tensor is [batch, response_tokens]; `mask` is 1 on the reply's tokens and 0 on the padding
after it. Nothing here knows about models, so each function is checked against numbers worked out
by hand (tests/runtime/test_ppo_math.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values − mean) / std over the masked tokens; with shift_mean False the mean is added back (scale only)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    return (whitened if shift_mean else whitened + mean) * mask


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """log π − log π_ref per sampled token: unbiased for KL(π‖π_ref), but one token's value may be negative."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """(r − 1) − log r with r = π_ref / π: unbiased too, never negative, and of lower variance than k1."""
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """−kl_coef · KL on every reply token, plus the reward model's score [batch] on each reply's last token."""
    rewards = -kl_coef * kl * mask
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) by generalised advantage estimation, right to left along each reply.

    δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γλ·A_{t+1}; past the reply's end V and A are 0, so
    the last token's advantage is its reward minus its value. returns = A + V: the value head's target.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    following_advantage = torch.zeros_like(rewards[:, 0])
    following_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * following_value - values[:, t]
        following_advantage = delta + gamma * lam * following_advantage
        advantages[:, t] = following_advantage
        following_value = values[:, t]
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


@dataclass(frozen=True)
class Losses:
    policy: torch.Tensor  # the clipped surrogate, to minimise
    value: torch.Tensor  # the clipped squared error of the value head
    clip_fraction: torch.Tensor  # share of reply tokens whose ratio the clip held back
    value_clip_fraction: torch.Tensor  # share of tokens where the clipped value error was the larger


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, clip fraction): the mean over tokens of max(−A·ratio, −A·clip(ratio, 1 ± ε))."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return masked_mean(torch.max(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, clip fraction): ½ · the mean of the larger squared error, with the value moved or held within ± ε."""
    held = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    unclipped, clipped = (values - returns) ** 2, (held - returns) ** 2
    return 0.5 * masked_mean(torch.max(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def ppo_losses(
    logprobs: torch.Tensor,
    values: torch.Tensor,
    old_logprobs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    clip_range_value: float,
) -> Losses:
    policy, clip_fraction = policy_loss(logprobs, old_logprobs, advantages, mask, clip_range)
    value, value_clip_fraction = value_loss(values, old_values, returns, mask, clip_range_value)
    return Losses(policy, value, clip_fraction, value_clip_fraction)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """The entropy (nats) of each position's next-token distribution: logsumexp − Σ p·logit."""
    probabilities = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probabilities * logits).sum(dim=-1)


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) at each position, from logits [batch, tokens, vocab] and the tokens [batch, tokens] taken."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
