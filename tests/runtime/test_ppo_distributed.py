"""PPO on two CPU processes (gloo, DDP), started by the local target's run.sh through torchrun: each rank samples
its share of the batch, the metrics are the whole batch's, and a checkpoint resumes every rank exactly."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.quickstart.tiny import build_tiny_reward_model, write_tiny_alpaca
from ftc.spec import parse_spec
from ftc.targets.base import Job
from ftc.targets.local import LocalTarget
from ftc.targets.prepare import write_job

LOGGED = ("reward", "kl", "policy_loss", "value_loss", "clip_fraction", "entropy")


@pytest.fixture(scope="module")
def two_process_ppo(tmp_path_factory, tiny_model_dir):
    """A 4-step lora PPO run on 2xcpu with a checkpoint at step 2: (job, metrics.json, output)."""
    folder = tmp_path_factory.mktemp("ppo-ddp")
    raw = {
        "model": {"name_or_path": str(tiny_model_dir), "template": "llama3"},
        "data": {"datasets": [{"path": str(write_tiny_alpaca(folder / "prompts.json", n=32))}], "cutoff_len": 64},
        "train": {
            "stage": "ppo",
            "method": "lora",
            "global_batch_size": 8,
            "micro_batch_size": 2,
            "learning_rate": 1e-2,
            "max_steps": 4,
            "logging_steps": 1,
            "save_steps": 2,
            "seed": 0,
        },
        "ppo": {
            "reward_model": str(build_tiny_reward_model(folder / "reward", seed=1)),
            "max_new_tokens": 8,
            "ppo_epochs": 2,
        },
        "monitor": {"report_to": []},
        "launch": {"collective_timeout_s": 120},
        "output": {"dir": str(folder / "run")},
    }
    spec = parse_spec(tomli_w.dumps(raw), str(folder / "job.toml"))
    plan = compile_plan(spec, parse_hardware("2xcpu"))
    assert (plan.strategy.value, plan.world_size.value, plan.micro_batch_size.value) == ("ddp", 2, 2)
    job = Job(spec_path=folder / "job.toml", spec=spec, plan=plan, run_dir=folder / "run", python=sys.executable)
    rendered = write_job(LocalTarget(), job, overwrite=False)
    result = subprocess.run(rendered.command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return job, json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8")), output


@pytest.mark.slow
def test_two_ranks_train_ppo_on_the_whole_batch(two_process_ppo):
    import torch

    job, metrics, output = two_process_ppo
    assert "pre-flight: 2 ranks on 1 host(s) joined an all-reduce" in output
    assert output.count("step 4/4") == 1  # rank 0 reports for both
    assert [entry["step"] for entry in metrics["log"]] == [1, 2, 3, 4]
    for name in LOGGED:
        assert all(math.isfinite(entry[name]) for entry in metrics["log"]), name
    kl = [entry["kl"] for entry in metrics["log"]]
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and sum(kl[1:]) > 0, kl
    assert (job.run_dir / "adapter" / "adapter_model.safetensors").is_file()
    state = torch.load(job.run_dir / "checkpoints" / "checkpoint-2" / "ppo_state.pt", weights_only=True)
    first, second = state["random_states"]  # each rank's own draws, both kept for the resume
    assert not torch.equal(first["rng"], second["rng"])


@pytest.mark.slow
def test_two_ranks_resume_ppo_exactly(two_process_ppo):
    job, metrics, _ = two_process_ppo
    shutil.rmtree(job.run_dir / "adapter")  # as if stopped after the checkpoint: metrics.json stays
    result = subprocess.run(["bash", str(job.run_dir / "run.sh")], capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "resuming from checkpoint-2" in output
    resumed = json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert resumed["resumed_at_steps"] == [2] and [entry["step"] for entry in resumed["log"]] == [1, 2, 3, 4]
    for before, after in zip(metrics["log"][2:], resumed["log"][2:], strict=True):
        for name in ("reward", "kl", "policy_loss", "value_loss"):
            assert after[name] == pytest.approx(before[name], rel=1e-5, abs=1e-6), (after["step"], name)
    assert Path(job.run_dir / "adapter" / "adapter_model.safetensors").is_file()
