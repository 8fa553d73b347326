"""A reward model on separable pairs (a real answer chosen, a refusal rejected) learns to rank them."""

from __future__ import annotations

import pytest

from ftc.quickstart.tiny import tiny_preferences, write_tiny_preferences
from tests.runtime.stage_runs import series, train_stage


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
def test_reward_model_ranks_chosen_above_rejected_on_pairs_it_never_saw(tmp_path, tiny_model_dir, method):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    metrics = train_stage(tmp_path / "run", tiny_model_dir, data, "preference", stage="rm", method=method)

    assert (metrics["stage"], metrics["method"]) == ("rm", method)
    assert len(series(metrics, "reward_accuracy")) == len(series(metrics, "reward_margin")) == 12
    assert sum(series(metrics, "reward_margin")[-3:]) / 3 > 0.5
    assert held_out_accuracy(tmp_path / "run", tiny_model_dir, method) >= 0.9  # chance is 0.5
    for plot in ("loss.png", "margin.png", "accuracy.png"):
        assert (tmp_path / "run" / plot).is_file()
    assert not (tmp_path / "run" / "rewards.png").exists()  # trl's RewardTrainer logs no per-reply rewards


def test_rm_names_the_methods_it_supports(tmp_path, tiny_model_dir):
    from ftc.errors import RuntimeUserError
    from ftc.runs.folder import load_run_folder
    from ftc.runtime.stages import rm
    from tests.runtime.run_folders import write_run_folder

    data = write_tiny_preferences(tmp_path / "pairs.json", n=8)
    run_dir = write_run_folder(tmp_path / "run", tiny_model_dir, data, "preference", stage="rm", method="freeze")
    with pytest.raises(RuntimeUserError, match="train.stage = 'rm' does not support train.method = 'freeze'") as caught:
        rm.run(load_run_folder(run_dir))
    assert caught.value.hint == "use one of: full, lora"
