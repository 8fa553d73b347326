"""Two CPU processes over gloo, started by the local target's run.sh through torchrun, train what one would.

A 2-process DDP run and a 2-process FSDP run (micro-batch 2 × accumulation 2 × 2 ranks) see the same
8 examples per step as one process with 4 accumulation steps, so their loss curves match the
single-process curve; only the order of floating-point sums differs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.runtime.tiny import write_tiny_alpaca
from ftc.spec import parse_spec
from ftc.targets.base import Job
from ftc.targets.local import LocalTarget
from ftc.targets.prepare import write_job

STEPS = 4
# Losses of the same 8 examples per step, from the same start; the runs differ only in how the
# gradient sums are ordered (per rank, then all-reduced or reduce-scattered), so they agree to
# float32 rounding (measured: 4.8e-7 for DDP and FSDP over 4 steps of a loss near 6).
LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_tiny_alpaca(tmp_path_factory.mktemp("data") / "data.json", n=64)


def tiny_job(folder: Path, model_dir: Path, data_path: Path, hardware: str, **train: object) -> Job:
    raw = {
        "model": {"name_or_path": str(model_dir), "template": "llama3"},
        "data": {"datasets": [{"path": str(data_path), "format": "alpaca"}], "cutoff_len": 64},
        "train": {
            "stage": "sft",
            "method": "lora",
            "global_batch_size": 8,
            "micro_batch_size": 2,
            "learning_rate": 1e-2,
            "max_steps": STEPS,
            "logging_steps": 1,
            "save_steps": 1000,
            "seed": 0,
            **train,
        },
        "lora": {"rank": 8, "alpha": 16, "target": "all"},
        "monitor": {"report_to": []},
        "output": {"dir": str(folder / "run")},
    }
    spec = parse_spec(tomli_w.dumps(raw), str(folder / "job.toml"))
    plan = compile_plan(spec, parse_hardware(hardware))
    return Job(spec_path=folder / "job.toml", spec=spec, plan=plan, run_dir=folder / "run", python=sys.executable)


def launched(job: Job) -> tuple[dict, str]:
    """Write the run folder as `ftc launch` does and run its run.sh; returns (metrics.json, output)."""
    rendered = write_job(LocalTarget(), job, overwrite=False)
    result = subprocess.run(rendered.command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8")), output


def losses(metrics: dict) -> list[float]:
    return [entry["loss"] for entry in metrics["log"] if "loss" in entry]


@pytest.fixture(scope="module")
def single_process_losses(tmp_path_factory, tiny_model_dir, data_path) -> list[float]:
    """The reference: one process, accumulating 4 micro-batches of 2, through the runtime's entry point."""
    from ftc.runtime.__main__ import run

    job = tiny_job(tmp_path_factory.mktemp("single"), tiny_model_dir, data_path, "cpu")
    assert (job.plan.world_size.value, job.plan.gradient_accumulation_steps.value) == (1, 4)
    write_job(LocalTarget(), job, overwrite=False)
    run(str(job.run_dir))
    found = losses(json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8")))
    assert len(found) == STEPS and found[-1] < found[0]
    return found


def two_process_run(tmp_path_factory, model_dir: Path, data_path: Path, strategy: str) -> tuple[Job, dict, str]:
    job = tiny_job(tmp_path_factory.mktemp(strategy), model_dir, data_path, "2xcpu", strategy=strategy, save_steps=2)
    plan = job.plan
    assert (plan.strategy.value, plan.world_size.value, plan.gradient_accumulation_steps.value) == (strategy, 2, 2)
    return (job, *launched(job))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_model_dir, data_path):
    return two_process_run(tmp_path_factory, tiny_model_dir, data_path, "ddp")


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, tiny_model_dir, data_path):
    return two_process_run(tmp_path_factory, tiny_model_dir, data_path, "fsdp")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_cpu_processes_match_one_process_with_the_same_global_batch(request, single_process_losses, strategy):
    job, metrics, output = request.getfixturevalue(f"{strategy}_run")
    assert "pre-flight: 2 ranks on 1 host(s) joined an all-reduce" in output
    assert "rank 1 on" in output and "(gloo)" in output
    deviation = max(abs(a - b) for a, b in zip(losses(metrics), single_process_losses, strict=True))
    print(f"{strategy}: largest loss deviation from one process {deviation:.2e}")
    assert deviation <= LOSS_TOLERANCE
    if strategy == "fsdp":  # the run read the fsdp.json generated for it
        wrapped = json.loads((job.run_dir / "fsdp.json").read_text(encoding="utf-8"))
        assert wrapped["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.parametrize("checkpoint", [None, "checkpoint-2"])
def test_what_two_processes_saved_exports_as_one_merged_model(request, tmp_path, strategy, checkpoint):
    from safetensors.torch import load_file

    from ftc.runtime.export import export

    job, _, _ = request.getfixturevalue(f"{strategy}_run")
    exported = export(job.run_dir, tmp_path / "merged", checkpoint, "auto", False)
    merged = load_file(exported / "model.safetensors")
    base = load_file(Path(job.spec.model.name_or_path) / "model.safetensors")
    assert set(merged) == set(base)  # LoRA merged away: the base's own tensors, whole
    moved = [name for name in base if not (merged[name] == base[name]).all()]
    assert any("q_proj" in name for name in moved)  # the gathered adapter's update is in the weights


@pytest.mark.slow
def test_a_ddp_checkpoint_resumes_to_the_same_losses(ddp_run):
    job, metrics, _ = ddp_run
    for finished in (job.run_dir / "checkpoints" / "checkpoint-4", job.run_dir / "adapter"):
        shutil.rmtree(finished)
    (job.run_dir / "metrics.json").unlink()
    result = subprocess.run(["bash", str(job.run_dir / "run.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "resuming from checkpoint-2" in result.stdout + result.stderr
    resumed = json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8"))
    after = {entry["step"]: entry["loss"] for entry in resumed["log"] if "loss" in entry and entry["step"] > 2}
    before = {entry["step"]: entry["loss"] for entry in metrics["log"] if "loss" in entry and entry["step"] > 2}
    assert after.keys() == {3, 4}
    assert after == pytest.approx(before, abs=1e-5)
