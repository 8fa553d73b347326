"""PPO on the tiny model, scored by a tiny reward model (a fixed random score head): rollouts are sampled
and scored, the KL to the reference starts at 0 and stays finite, the value head learns, the policy moves."""

from __future__ import annotations

import math

import pytest

from ftc.quickstart.tiny import build_tiny_reward_model, write_tiny_alpaca
from ftc.runs.seal import is_sealed
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

ROLLOUTS = {"max_new_tokens": 8, "ppo_epochs": 2}
LOGGED = ("reward", "kl", "policy_loss", "value_loss", "clip_fraction", "entropy")


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("reward") / "model", seed=1)


def moved_weights(trained, base, method: str) -> float:
    """How far the trained policy is from its start: the adapter's B matrices start at 0, a full model at the base."""
    from safetensors.torch import load_file

    if method == "lora":
        adapter = load_file(trained / "adapter_model.safetensors")
        return sum(tensor.abs().sum().item() for name, tensor in adapter.items() if "lora_B" in name)
    before, after = load_file(base / "model.safetensors"), load_file(trained / "model.safetensors")
    return sum((after[name].float() - before[name].float()).abs().sum().item() for name in before)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_ppo_completes_rollouts_and_updates_with_a_finite_kl(
    tmp_path, tiny_model_dir, reward_model_dir, train_stage, method
):
    data = write_tiny_alpaca(tmp_path / "prompts.json", n=32)
    run_dir = tmp_path / "run"
    sections = {"ppo": {"reward_model": str(reward_model_dir), **ROLLOUTS}}
    metrics = train_stage(run_dir, data, "alpaca", sections, stage="ppo", method=method, max_steps=4, save_steps=2)

    assert (metrics["stage"], metrics["method"]) == ("ppo", method)
    assert [entry["step"] for entry in metrics["log"]] == [1, 2, 3, 4]
    for name in LOGGED:
        values = series(metrics, name)
        assert len(values) == 4 and all(math.isfinite(value) for value in values), (name, values)
    kl = series(metrics, "kl")
    assert kl[0] == pytest.approx(0.0, abs=1e-6)  # the first rollout is sampled by the reference itself
    assert min(kl) >= 0 and sum(kl[1:]) > 0, kl  # then the updates have moved the policy away from it
    assert len(set(series(metrics, "reward"))) == 4  # each step scored new replies
    value_loss = series(metrics, "value_loss")
    assert value_loss[-1] < value_loss[0], value_loss  # the value head learns the returns
    assert metrics["train_runtime_s"] > 0 and metrics["startup_s"] > 0

    trained = run_dir / ("adapter" if method == "lora" else "model")
    assert moved_weights(trained, tiny_model_dir, method) > 0
    assert (trained / "tokenizer.json").is_file()
    checkpoint = run_dir / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "ppo_state.pt").is_file() and (checkpoint / "tokenizer.json").is_file()
    assert is_sealed(checkpoint)  # written whole: ftc.runs.seal
    assert (checkpoint / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")).is_file()
    for plot in ("loss.png", "reward.png", "kl.png", "ppo_losses.png", "entropy.png"):
        assert (run_dir / plot).read_bytes().startswith(b"\x89PNG")


def test_ppo_refuses_what_its_loop_does_not_do(tmp_path, reward_model_dir, train_stage):
    from ftc.errors import RuntimeUserError

    data = write_tiny_alpaca(tmp_path / "prompts.json", n=8)
    sections = {"ppo": {"reward_model": str(reward_model_dir), **ROLLOUTS}}
    with pytest.raises(RuntimeUserError, match="train.optimizer = 'adamw_8bit'"):
        train_stage(tmp_path / "run", data, "alpaca", sections, stage="ppo", optimizer="adamw_8bit")


def test_a_missing_reward_model_is_named_by_its_key(tmp_path, train_stage):
    from ftc.errors import RuntimeUserError

    data = write_tiny_alpaca(tmp_path / "prompts.json", n=8)
    sections = {"ppo": {"reward_model": str(tmp_path / "no-such-rm"), **ROLLOUTS}}
    with pytest.raises(RuntimeUserError) as caught:
        train_stage(tmp_path / "run", data, "alpaca", sections, stage="ppo", max_steps=1)
    assert caught.value.message == f"ppo.reward_model: folder {tmp_path / 'no-such-rm'} not found"
    assert "rm" in caught.value.hint


def test_ppo_distributes_with_ddp_only_and_says_so_before_loading_anything():
    from dataclasses import replace

    from ftc.compiler.plan import Decision
    from ftc.errors import RuntimeUserError
    from ftc.runtime.stages.ppo import check_runnable
    from ftc.spec.models import Spec

    spec = Spec.model_validate(
        {
            "model": {"name_or_path": "m"},
            "data": {"datasets": [{"path": "d.json", "format": "alpaca"}]},
            "train": {"stage": "ppo", "max_steps": 1},
            "ppo": {"reward_model": "rm"},
        }
    )
    check_runnable(spec, cpu_plan())
    two = replace(cpu_plan(), world_size=Decision(2, "two GPUs"))
    check_runnable(spec, replace(two, strategy=Decision("ddp", "fixed by the test")))
    with pytest.raises(RuntimeUserError, match="with ddp .*, but the plan chose zero3") as caught:
        check_runnable(spec, replace(two, strategy=Decision("zero3", "fixed by the test")))
    assert "train.strategy = 'ddp'" in caught.value.hint


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_as_an_unbroken_run_would(
    tmp_path, tiny_model_dir, reward_model_dir, run_folder, train_stage, monkeypatch
):
    """SIGTERM after step 2 → a checkpoint and exit; the next start continues with step 3, and steps 3-4 log
    exactly what a run never stopped logs (policy, value head, optimizer, schedule, prompt order and RNG restored)."""
    import json
    import os
    import signal

    from ftc.runs.stopping import EXIT_STOPPED
    from ftc.runtime.__main__ import run
    from ftc.runtime.ppo import learner as ppo_learner

    data = write_tiny_alpaca(tmp_path / "prompts.json", n=32)
    sections = {"ppo": {"reward_model": str(reward_model_dir), **ROLLOUTS}}
    settings = {"stage": "ppo", "method": "lora", "max_steps": 4, "save_steps": 10}  # over QUICK, as in train_stage
    unbroken = train_stage(tmp_path / "unbroken", data, "alpaca", sections, **settings)

    stopped_spec = tiny_spec(tmp_path / "stopped", tiny_model_dir, data, preset=QUICK, sections=sections, **settings)
    stopped = run_folder(stopped_spec, cpu_plan())
    update = ppo_learner.Learner.update

    def update_then_signal(learner, rollout):
        stats = update(learner, rollout)
        if learner.scheduler.last_epoch == 2 * ROLLOUTS["ppo_epochs"]:  # the end of step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return stats

    monkeypatch.setattr(ppo_learner.Learner, "update", update_then_signal)
    with pytest.raises(SystemExit) as exited:
        run(str(stopped))
    assert exited.value.code == EXIT_STOPPED
    assert [entry["step"] for entry in json.loads((stopped / "metrics.json").read_text())["log"]] == [1, 2]
    assert (stopped / "checkpoints" / "checkpoint-2" / "ppo_state.pt").is_file()
    assert not (stopped / "adapter").exists()

    monkeypatch.setattr(ppo_learner.Learner, "update", update)
    run(str(stopped))
    resumed = json.loads((stopped / "metrics.json").read_text())
    assert resumed["resumed_at_steps"] == [2]
    assert [entry["step"] for entry in resumed["log"]] == [1, 2, 3, 4]
    for before, after in zip(unbroken["log"], resumed["log"], strict=True):
        for name in ("reward", "kl", "policy_loss", "value_loss", "learning_rate"):
            assert after[name] == pytest.approx(before[name], rel=1e-4, abs=1e-6), (before["step"], name)


@pytest.mark.slow
def test_resuming_a_run_whose_settings_changed_is_refused(tmp_path, reward_model_dir, train_stage):
    import tomli_w

    from ftc.errors import RuntimeUserError
    from ftc.runtime.__main__ import run
    from ftc.spec.loader import parse_spec

    data = write_tiny_alpaca(tmp_path / "prompts.json", n=16)
    sections = {"ppo": {"reward_model": str(reward_model_dir), **ROLLOUTS}}
    run_dir = tmp_path / "run"
    train_stage(run_dir, data, "alpaca", sections, stage="ppo", max_steps=2, save_steps=1)
    spec = parse_spec((run_dir / "spec.toml").read_text(), "spec.toml").model_dump(mode="json", exclude_none=True)
    spec["ppo"]["kl_coef"] = 0.5
    (run_dir / "spec.toml").write_text(tomli_w.dumps(spec))
    with pytest.raises(RuntimeUserError, match=r"the run changed since it began: ppo.kl_coef 0.05 → 0.5"):
        run(str(run_dir))
