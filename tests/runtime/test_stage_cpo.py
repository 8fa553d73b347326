"""CPO and SimPO on separable pairs (a real answer chosen, a refusal rejected), with no reference model:
the margin opens up, and only the weights the method trains move."""

from __future__ import annotations

import math

import pytest

from ftc.quickstart.tiny import write_tiny_preferences
from tests.tiny_runs import series


def moved(trained, base, method: str) -> set[str]:
    """The tensors a run changed: the adapter's (against their start, A random and B zero) or the model's."""
    import torch
    from safetensors.torch import load_file

    if method == "lora":
        # peft starts B at zero: a moved adapter has B ≠ 0; the file holds the adapter and nothing else
        adapter = load_file(trained / "adapter_model.safetensors")
        assert all("lora_" in name for name in adapter), sorted(adapter)
        return {name for name, tensor in adapter.items() if "lora_B" in name and tensor.abs().sum() > 0}
    before, after = load_file(base / "model.safetensors"), load_file(trained / "model.safetensors")
    return {name for name in before if not torch.equal(before[name], after[name])}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_cpo_ranks_chosen_over_rejected_with_its_nll_term(tmp_path, tiny_model_dir, train_stage, method):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    # CPO's rewards are β × each reply's summed log-probability: the untrained model already scores the
    # longer refusals far lower, so a small β keeps the preference term from starting saturated.
    metrics = train_stage(
        tmp_path / "run", data, "preference", stage="cpo", method=method,
        sections={"preference": {"beta": 0.02}}, learning_rate=1e-2,
    )  # fmt: skip

    losses, margins, nll = ([entry[name] for entry in metrics["log"]] for name in ("loss", "reward_margin", "nll_loss"))
    assert (metrics["stage"], metrics["method"]) == ("cpo", method) and len(margins) == 12
    # cpo_alpha unset is 1 for CPO: the loss is −log σ(reward margin), averaged over pairs, plus the chosen
    # reply's NLL; by convexity that average is at least −log σ of the mean margin trl logs.
    preference = [loss - term for loss, term in zip(losses, nll, strict=True)]
    assert all(part >= math.log1p(math.exp(-margin)) - 1e-4 for part, margin in zip(preference, margins, strict=True))
    # Each step sees other pairs, so halves are compared: the NLL falls, the margin opens, the preference term falls.
    assert min(nll) > 0 and sum(nll[6:]) < 0.9 * sum(nll[:6]), nll
    assert sum(margins[6:]) > 1.1 * sum(margins[:6]), margins
    assert sum(preference[6:]) < 0.95 * sum(preference[:6]), preference
    assert sum(series(metrics, "reward_accuracy")[6:]) / 6 > 0.9
    assert metrics["last_loss"] < metrics["first_loss"]
    trained = tmp_path / "run" / ("adapter" if method == "lora" else "model")
    changed = moved(trained, tiny_model_dir, method)
    if method == "lora":
        assert len(changed) == 2 * 7, changed  # every adapted linear of the 2 layers (q, k, v, o, gate, up, down)
    else:
        from safetensors.torch import load_file

        assert changed == set(load_file(tiny_model_dir / "model.safetensors")), changed  # full: every weight


@pytest.mark.slow
def test_simpo_averages_per_token_clears_its_margin_and_drops_the_nll(tmp_path, tiny_model_dir, train_stage):
    data = write_tiny_preferences(tmp_path / "pairs.json", n=64)
    sections = {"preference": {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 1.0}}
    metrics = train_stage(
        tmp_path / "run", data, "preference", sections, stage="cpo", method="lora", learning_rate=1e-2
    )

    margins, nll = series(metrics, "reward_margin"), series(metrics, "nll_loss")
    assert (metrics["stage"], len(margins)) == ("cpo", 12)
    assert nll == [0.0] * 12  # SimPO has no NLL term: cpo_alpha unset is 0 under loss_type simpo
    # SimPO's loss is −log σ(margin − γ), with rewards β × the mean log-probability per token: log(1 + e) ≈ 1.31
    # at a zero margin, and it falls as the margin clears γ = 1.
    assert metrics["first_loss"] > 0.9 and metrics["last_loss"] < 0.5 * metrics["first_loss"], metrics["log"]
    assert sum(margins[-3:]) / 3 > 1.0, margins
    assert len(moved(tmp_path / "run" / "adapter", tiny_model_dir, "lora")) == 2 * 7
