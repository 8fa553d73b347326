"""PPO's arithmetic against numbers worked out by hand (each comment shows the working)."""

from __future__ import annotations

import math

import pytest
import torch

from ftc.runtime.ppo.arithmetic import (
    entropy_from_logits,
    gae,
    kl_k1,
    kl_k3,
    logprobs_of,
    masked_mean,
    masked_whiten,
    policy_loss,
    ppo_losses,
    token_rewards,
    value_loss,
)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=1e-5, rtol=1e-5)


def test_masked_mean_ignores_the_padding():
    close(masked_mean(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])), 2.0)


def test_whitening_uses_only_masked_tokens():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    # mean 2.5, variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    scale = 1 / math.sqrt(1.25 + 1e-8)
    close(masked_whiten(values, mask), [[-1.5 * scale, -0.5 * scale, 0.5 * scale, 1.5 * scale, 0.0]])
    close(masked_whiten(values, mask, shift_mean=False)[0, 0], -1.5 * scale + 2.5)


def test_kl_estimators():
    logprobs, ref = torch.log(torch.tensor([0.5, 0.5])), torch.log(torch.tensor([0.25, 0.5]))
    close(kl_k1(logprobs, ref), [math.log(2), 0.0])  # log 0.5 − log 0.25
    # r = 0.25 / 0.5 = 0.5: (0.5 − 1) − log 0.5 = −0.5 + 0.693147
    close(kl_k3(logprobs, ref), [-0.5 + math.log(2), 0.0])
    assert (kl_k3(torch.randn(100), torch.randn(100)) >= 0).all()  # k3 is never negative


def test_the_score_lands_on_each_replys_last_token_beside_the_kl_penalty():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = token_rewards(torch.tensor([2.0, -1.0]), kl, mask, kl_coef=0.5)
    # −0.5·kl everywhere on the reply; +2 on row 0's third token, −1 on row 1's second (its last)
    close(rewards, [[-0.05, -0.1, -0.15 + 2.0], [-0.2, -0.25 - 1.0, 0.0]])


def test_gae_undiscounted_spreads_the_final_reward_back():
    rewards, values, mask = torch.tensor([[0.0, 0.0, 1.0]]), torch.full((1, 3), 0.5), torch.ones(1, 3)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # γ = λ = 1: A_t = (sum of rewards from t) − V_t = 1 − 0.5
    close(advantages, [[0.5, 0.5, 0.5]])
    close(returns, [[1.0, 1.0, 1.0]])


def test_gae_discounted_by_hand():
    rewards, values, mask = torch.tensor([[0.0, 0.0, 1.0]]), torch.full((1, 3), 0.5), torch.ones(1, 3)
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # t=2: δ = 1 − 0.5 = 0.5,               A = 0.5
    # t=1: δ = 0 + 0.9·0.5 − 0.5 = −0.05,   A = −0.05 + 0.45·0.5 = 0.175
    # t=0: δ = −0.05,                       A = −0.05 + 0.45·0.175 = 0.02875
    close(advantages, [[0.02875, 0.175, 0.5]])
    close(returns, [[0.52875, 0.675, 1.0]])


def test_gae_stops_at_the_replys_end():
    # the padding's rewards and values (9, 7) must not leak into the reply's one token
    advantages, returns = gae(
        torch.tensor([[1.0, 9.0, 9.0]]), torch.tensor([[0.2, 7.0, 7.0]]), torch.tensor([[1.0, 0.0, 0.0]]), 0.9, 0.5
    )
    close(advantages, [[0.8, 0.0, 0.0]])  # 1 − 0.2
    close(returns, [[1.0, 0.0, 0.0]])


def test_policy_loss_clips_the_ratio_in_the_advantages_direction_only():
    old, mask = torch.zeros(1, 2), torch.ones(1, 2)
    logprobs = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5 (old log-probabilities 0)
    loss, clipped = policy_loss(logprobs, old, torch.ones(1, 2), mask, clip_range=0.2)
    # A = +1: max(−1.5, −1.2) = −1.2 (clipped), max(−0.5, −0.8) = −0.5 (not): mean −0.85
    close(loss, -0.85)
    close(clipped, 0.5)
    loss, clipped = policy_loss(logprobs, old, -torch.ones(1, 2), mask, clip_range=0.2)
    # A = −1: max(1.5, 1.2) = 1.5 (not), max(0.5, 0.8) = 0.8 (clipped): mean 1.15
    close(loss, 1.15)
    close(clipped, 0.5)


def test_policy_loss_gradient_is_minus_the_advantage_on_policy():
    logprobs = torch.zeros(1, 2, requires_grad=True)
    loss, clipped = policy_loss(logprobs, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2), 0.2)
    loss.backward()
    close(logprobs.grad, [[-1.0, 0.5]])  # −A / tokens
    close(clipped, 0.0)


def test_value_loss_by_hand():
    values, old = torch.tensor([[2.0, 0.1]]), torch.tensor([[1.0, 0.0]])
    loss, clipped = value_loss(values, old, torch.tensor([[3.0, 0.0]]), torch.ones(1, 2), clip_range_value=0.5)
    # token 0: held at 1.5; (2 − 3)² = 1 < (1.5 − 3)² = 2.25 → 2.25 (clipped); token 1: 0.01 both
    close(loss, 0.5 * (2.25 + 0.01) / 2)
    close(clipped, 0.5)


def test_ppo_losses_bundle_both():
    mask = torch.tensor([[1.0, 0.0]])
    losses = ppo_losses(
        torch.zeros(1, 2), torch.tensor([[1.0, 5.0]]), torch.zeros(1, 2), torch.ones(1, 2),
        torch.tensor([[3.0, 8.0]]), torch.tensor([[2.0, 0.0]]), mask, 0.2, 0.2,
    )  # fmt: skip
    close(losses.policy, -3.0)  # ratio 1, A = 3; the padded token counts for nothing
    close(losses.value, 0.5)  # ½ (1 − 2)²
    close(losses.clip_fraction, 0.0)
    close(losses.value_clip_fraction, 0.0)


def test_entropy_and_logprobs():
    close(entropy_from_logits(torch.zeros(1, 1, 4)), [[math.log(4)]])
    close(entropy_from_logits(torch.tensor([[[0.0, -1e4]]])), [[0.0]])
    logits = torch.log(torch.tensor([[[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]]))
    close(logprobs_of(logits, torch.tensor([[2, 0]])), [[math.log(0.7), math.log(0.5)]])


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.99, 0.0)])
def test_gae_returns_are_the_value_targets(gamma, lam):
    # λ = 0: A_t = δ_t, so returns = r_t + γ·V_{t+1}, the one-step target
    rewards, values, mask = torch.randn(3, 5), torch.randn(3, 5), torch.ones(3, 5)
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    close(returns - values, advantages.tolist())
    if lam == 0.0:
        following = torch.cat([values[:, 1:], torch.zeros(3, 1)], dim=1)
        close(returns, (rewards + gamma * following).tolist())
