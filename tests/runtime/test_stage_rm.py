"""A reward model on separable pairs (a real answer chosen, a refusal rejected) learns to rank them."""

from __future__ import annotations

import pytest

from ftc.quickstart.tiny import tiny_preferences, write_tiny_preferences
from tests.tiny_runs import series


def held_out_accuracy(run_dir, model_dir, method: str, n: int = 32) -> float:
    """Score pairs the model never saw, loaded back from the run folder as a user would."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    trained = run_dir / ("adapter" if method == "lora" else "model")
    tokenizer = AutoTokenizer.from_pretrained(trained)  # carries the template trained with
    if method == "lora":
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
        model = PeftModel.from_pretrained(base, trained)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(trained)
    model.eval()

    def score(prompt: str, reply: str) -> float:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            return model(input_ids=ids).logits[0, 0].item()

    pairs = tiny_preferences(n, seed=99)
    ranked = [
        score(prompt := "\n\n".join(p for p in (pair["instruction"], pair["input"]) if p), pair["chosen"])
        > score(prompt, pair["rejected"])
        for pair in pairs
    ]
    return sum(ranked) / len(ranked)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_reward_model_ranks_chosen_above_rejected_on_pairs_it_never_saw(tmp_path, tiny_model_dir, train_stage, method):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    metrics = train_stage(tmp_path / "run", data, "preference", stage="rm", method=method)

    assert (metrics["stage"], metrics["method"]) == ("rm", method)
    assert len(series(metrics, "reward_accuracy")) == len(series(metrics, "reward_margin")) == 12
    assert sum(series(metrics, "reward_margin")[-3:]) / 3 > 0.5
    assert held_out_accuracy(tmp_path / "run", tiny_model_dir, method) >= 0.9  # chance is 0.5
    for plot in ("loss.png", "margin.png", "accuracy.png"):
        assert (tmp_path / "run" / plot).is_file()
    assert not (tmp_path / "run" / "rewards.png").exists()  # trl's RewardTrainer logs no per-reply rewards
