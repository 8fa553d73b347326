"""DPO on separable pairs (a real answer chosen, a refusal rejected): the reward margin opens up."""

from __future__ import annotations

import pytest

from ftc.quickstart.tiny import write_tiny_preferences
from tests.tiny_runs import series


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_dpo_opens_the_margin_between_chosen_and_rejected(tmp_path, train_stage, method):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    metrics = train_stage(tmp_path / "run", data, "preference", stage="dpo", method=method)

    margins, accuracies = series(metrics, "reward_margin"), series(metrics, "reward_accuracy")
    assert len(margins) == 12 and (metrics["stage"], metrics["method"]) == ("dpo", method)
    # Step 1 scores the untrained policy, which is its own reference: no margin yet.
    assert margins[0] == pytest.approx(0.0, abs=1e-4)
    assert sum(margins[-3:]) / 3 > 0.5, margins
    assert sum(accuracies[-3:]) / 3 > 0.9, accuracies
    assert metrics["last_loss"] < metrics["first_loss"]
    trained = tmp_path / "run" / ("adapter" if method == "lora" else "model")
    assert (trained / "tokenizer.json").is_file()
    assert not (trained / "ref").exists()  # trl's frozen copy of the adapter is its reference, not the result
    for plot in ("loss.png", "rewards.png", "margin.png", "accuracy.png"):
        assert (tmp_path / "run" / plot).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_ipo_with_an_sft_term_and_held_out_pairs(tmp_path, train_stage):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=80)
    sections = {
        "data": {"datasets": [{"path": str(data), "format": "preference"}], "cutoff_len": 128, "eval_ratio": 0.2},
        "preference": {"loss_type": "ipo", "ftx": 0.5, "beta": 0.5},
    }
    metrics = train_stage(tmp_path / "run", data, "preference", sections, stage="dpo", method="lora", logging_steps=4)

    margins = series(metrics, "reward_margin")
    assert margins[0] == pytest.approx(0.0, abs=1e-4) and margins[-1] > 0.3, margins
    # IPO alone starts at (0 − 1/2β)² = 1; the rest is 0.5 × the chosen reply's NLL (~6 nats untrained).
    assert metrics["first_loss"] > 2.5
    # Evaluated on the 16 held-out pairs at every logging step (4, 8, 12), drawn beside the training loss.
    assert [entry["step"] for entry in metrics["eval_log"]] == [4, 8, 12]
    assert metrics["eval_log"][-1]["eval_loss"] < metrics["eval_log"][0]["eval_loss"]


@pytest.mark.slow
def test_full_dpo_in_bf16_against_a_bf16_reference(tmp_path, train_stage):
    # The policy keeps fp32 weights under bf16 autocast; the frozen reference is held in bf16, as the plan counts it.
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    metrics = train_stage(tmp_path / "run", data, "preference", None, "bf16", stage="dpo", method="full")

    margins = series(metrics, "reward_margin")
    assert abs(margins[0]) < 0.05 and sum(margins[-3:]) / 3 > 0.5, margins
