"""ORPO on separable pairs (a real answer chosen, a refusal rejected): SFT on chosen, and the odds move apart."""

from __future__ import annotations

import pytest

from ftc.quickstart.tiny import write_tiny_preferences
from tests.tiny_runs import series


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_orpo_raises_chosen_over_rejected_without_a_reference(tmp_path, train_stage, method):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    metrics = train_stage(
        tmp_path / "run", data, "preference", stage="orpo", method=method,
        sections={"preference": {"beta": 0.5}}, learning_rate=1e-2,
    )  # fmt: skip

    # ORPO's rewards are β × the mean log-probability of each reply: no reference, so no zero start.
    margins, chosen = series(metrics, "reward_margin"), series(metrics, "reward_chosen")
    assert (metrics["stage"], metrics["method"]) == ("orpo", method) and len(margins) == 12
    assert sum(margins[-3:]) / 3 > sum(margins[:3]) / 3 + 0.3, margins
    assert sum(chosen[-3:]) / 3 > sum(chosen[:3]) / 3, chosen  # the SFT half: chosen replies grow likelier
    assert metrics["last_loss"] < metrics["first_loss"]
    assert sum(series(metrics, "reward_accuracy")[-3:]) / 3 > 0.9
