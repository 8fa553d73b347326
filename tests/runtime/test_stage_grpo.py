"""GRPO on the tiny model through trl: groups of sampled replies scored by a built-in reward function (or a
reward model), the reward logged, the policy moved."""

from __future__ import annotations

import math

import pytest

from ftc.quickstart.tiny import build_tiny_reward_model, write_tiny_alpaca
from tests.tiny_runs import series

# ppo_epochs = 1: trl generates at every step (more iterations reuse a step's replies and log no reward)
ROLLOUTS = {"max_new_tokens": 8, "num_generations": 4, "ppo_epochs": 1}


def adapter_or_model_moved(trained, base, method: str) -> float:
    from safetensors.torch import load_file

    if method == "lora":
        adapter = load_file(trained / "adapter_model.safetensors")
        return sum(tensor.abs().sum().item() for name, tensor in adapter.items() if "lora_B" in name)
    before, after = load_file(base / "model.safetensors"), load_file(trained / "model.safetensors")
    return sum((after[name].float() - before[name].float()).abs().sum().item() for name in before)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_grpo_logs_the_reward_of_every_group_and_moves_the_policy(tmp_path, tiny_model_dir, train_stage, method):
    data = write_tiny_alpaca(tmp_path / "prompts.json", n=32)
    # replies of the untrained model differ in length, so the groups' rewards differ and there is something to learn
    sections = {"ppo": {"reward_functions": ["length"], "target_words": 4, **ROLLOUTS}}
    run_dir = tmp_path / "run"
    metrics = train_stage(run_dir, data, "alpaca", sections, stage="grpo", method=method, max_steps=3)

    assert (metrics["stage"], metrics["method"]) == ("grpo", method)
    rewards = series(metrics, "reward")
    assert len(rewards) == 3 and all(0 <= reward <= 1 for reward in rewards), rewards  # "length" scores 0..1
    kl = series(metrics, "kl")
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and all(math.isfinite(value) and value >= 0 for value in kl)
    trained = run_dir / ("adapter" if method == "lora" else "model")
    assert adapter_or_model_moved(trained, tiny_model_dir, method) > 0
    assert (trained / "tokenizer.json").is_file()
    for plot in ("loss.png", "reward.png", "kl.png"):
        assert (run_dir / plot).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_grpo_scores_every_reply_with_a_reward_model_beside_the_functions(tmp_path, train_stage, monkeypatch):
    from ftc.runtime.stages import grpo

    scored: list[int] = []
    load = grpo.load_reward_model

    def load_and_count(*args):
        model, tokenizer = load(*args)
        model.register_forward_hook(lambda module, inputs, output: scored.append(len(output.logits)))
        return model, tokenizer

    monkeypatch.setattr(grpo, "load_reward_model", load_and_count)
    reward_model = build_tiny_reward_model(tmp_path / "reward", seed=1)
    data = write_tiny_alpaca(tmp_path / "prompts.json", n=16)
    sections = {"ppo": {"reward_functions": ["distinct"], "reward_model": str(reward_model), **ROLLOUTS}}
    metrics = train_stage(tmp_path / "run", data, "alpaca", sections, stage="grpo", max_steps=2)

    assert scored == [8, 8]  # each step's 2 prompts × 4 replies, all scored by the reward model
    rewards = series(metrics, "reward")
    assert len(rewards) == 2 and all(math.isfinite(reward) for reward in rewards)
