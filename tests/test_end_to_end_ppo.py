"""A user's PPO run: a spec file naming a reward model beside it → `ftc launch` → run folder → runtime → an
adapter, with the rollout curves `ftc report` redraws."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from ftc.quickstart.tiny import build_tiny_reward_model, write_tiny_alpaca
from tests.commands import ftc

SPEC = """\
[model]
name_or_path = "tiny model"
template = "llama3"

[data]
cutoff_len = 96

[[data.datasets]]
path = "data/prompts.json"
format = "alpaca"

[train]
stage = "ppo"
method = "lora"
global_batch_size = 8
micro_batch_size = 4
learning_rate = 1e-3
max_steps = 3
seed = 0
logging_steps = 1
save_steps = 3

[ppo]
reward_model = "./reward model"   # relative: read from the spec's folder, like model.name_or_path
max_new_tokens = 8
ppo_epochs = 2

[output]
dir = "runs/ppo"
"""


@pytest.mark.slow
def test_launch_runs_ppo_against_a_reward_model_beside_the_spec(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "tiny model")
    write_tiny_alpaca(tmp_path / "data" / "prompts.json", n=32)
    (tmp_path / "job.toml").write_text(SPEC)

    missing = ftc("launch", str(tmp_path / "job.toml"), "--target", "local", "-H", "cpu")
    assert missing.returncode == 1
    assert f"ppo.reward_model: {tmp_path / 'reward model'} does not exist" in missing.stderr
    assert not (tmp_path / "runs").exists()

    build_tiny_reward_model(tmp_path / "reward model", seed=1)
    launched = ftc("launch", str(tmp_path / "job.toml"), "--target", "local", "-H", "cpu")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    run_dir = tmp_path / "runs" / "ppo"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["stage"], metrics["method"]) == ("ppo", "lora")
    assert [entry["step"] for entry in metrics["log"]] == [1, 2, 3]
    assert all(math.isfinite(entry["kl"]) and entry["kl"] >= 0 for entry in metrics["log"])
    assert "reward_model = " + json.dumps(str(tmp_path / "reward model")) in (run_dir / "spec.toml").read_text()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert "step 3/3 · reward" in launched.stdout

    for plot in ("reward.png", "kl.png"):
        (run_dir / plot).unlink()
    reported = ftc("report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    assert "KL to the reference (nats per token)" in reported.stdout
    assert all((run_dir / plot).read_bytes().startswith(b"\x89PNG") for plot in ("reward.png", "kl.png"))
