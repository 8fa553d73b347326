"""DPO on separable pairs (a real answer chosen, a refusal rejected): the reward margin opens up."""

from __future__ import annotations

import pytest

from ftc.runtime.tiny import write_tiny_preferences
from tests.runtime.stage_runs import series, train_stage


@pytest.mark.parametrize("method", ["full", "lora"])
def test_dpo_opens_the_margin_between_chosen_and_rejected(tmp_path, tiny_model_dir, method):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    metrics = train_stage(tmp_path / "run", tiny_model_dir, data, "preference", stage="dpo", method=method)

    margins, accuracies = series(metrics, "reward_margin"), series(metrics, "reward_accuracy")
    assert len(margins) == 12 and (metrics["stage"], metrics["method"]) == ("dpo", method)
    # Step 1 scores the untrained policy, which is its own reference: no margin yet.
    assert margins[0] == pytest.approx(0.0, abs=1e-4)
    assert sum(margins[-3:]) / 3 > 0.5, margins
    assert sum(accuracies[-3:]) / 3 > 0.9, accuracies
    assert metrics["last_loss"] < metrics["first_loss"]
    trained = tmp_path / "run" / ("adapter" if method == "lora" else "model")
    assert (trained / "tokenizer.json").is_file()
    for plot in ("loss.png", "rewards.png", "margin.png", "accuracy.png"):
        assert (tmp_path / "run" / plot).read_bytes().startswith(b"\x89PNG")
