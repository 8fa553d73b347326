"""Two CPU processes over gloo, started by the local target's run.sh through torchrun, train what one would.

A 2-process DDP run and a 2-process FSDP run (micro-batch 2 × accumulation 2 × 2 ranks) see the same
8 examples per step as one process with 4 accumulation steps, so their loss curves match the
single-process curve; only the order of floating-point sums differs.
"""

from __future__ import annotations

import json
import os
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
# float32 rounding, amplified a little by Adam over the steps.
LOSS_TOLERANCE = 1e-3


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


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_cpu_processes_match_one_process_with_the_same_global_batch(
    tmp_path, tiny_model_dir, data_path, single_process_losses, strategy
):
    job = tiny_job(tmp_path, tiny_model_dir, data_path, "2xcpu", strategy=strategy)
    plan = job.plan
    assert (plan.strategy.value, plan.world_size.value, plan.gradient_accumulation_steps.value) == (strategy, 2, 2)
    metrics, output = launched(job)

    assert "pre-flight: 2 ranks on 1 host(s) joined an all-reduce" in output
    assert "rank 1 on" in output and "(gloo)" in output
    deviation = max(abs(a - b) for a, b in zip(losses(metrics), single_process_losses, strict=True))
    print(f"{strategy}: largest loss deviation from one process {deviation:.2e}")
    assert deviation <= LOSS_TOLERANCE
    assert (job.run_dir / "adapter" / "adapter_model.safetensors").is_file()  # gathered and saved once
    if strategy == "fsdp":
        assert json.loads((job.run_dir / "fsdp.json").read_text())["transformer_layer_cls_to_wrap"] == [
            "LlamaDecoderLayer"
        ]
