"""Two CPU processes over gloo, started by the local target's run.sh through torchrun, train what one would.

A 2-process DDP run and a 2-process FSDP run (micro-batch 2 × accumulation 2 × 2 ranks) see the same
8 examples per step as one process with 4 accumulation steps, so their loss curves match the
single-process curve; only the order of floating-point sums differs.
"""

from __future__ import annotations

import dataclasses
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


# -- the pre-flight and the backend's environment, with torch.distributed stood in for -----------------
class FakeCollectives:
    """torch.distributed as one rank of a world of `world` sees it, recording what it was asked."""

    def __init__(self, world: int, barrier_error: str | None = None, reduce_error: str | None = None) -> None:
        self.world, self.barrier_error, self.reduce_error = world, barrier_error, reduce_error
        self.calls: list[tuple] = []

    def install(self, monkeypatch) -> None:
        import torch.distributed as dist

        monkeypatch.setattr(dist, "is_initialized", lambda: False)
        monkeypatch.setattr(dist, "init_process_group", lambda **kw: self.calls.append(("init", kw)))
        monkeypatch.setattr(dist, "new_group", lambda **kw: self.calls.append(("group", kw)) or "reports")
        monkeypatch.setattr(dist, "monitored_barrier", self.barrier)
        monkeypatch.setattr(dist, "all_gather_object", self.gather)
        monkeypatch.setattr(dist, "all_reduce", self.reduce)
        monkeypatch.setattr(dist, "destroy_process_group", lambda group=None: None)

    def barrier(self, group=None, timeout=None, wait_all_ranks=False):
        if self.barrier_error:
            raise RuntimeError(self.barrier_error)

    def gather(self, reports, mine, group=None):
        from dataclasses import replace

        reports[:] = [replace(mine, rank=index, host=f"node-{index // 2}") for index in range(self.world)]

    def reduce(self, tensor):
        if self.reduce_error:
            raise RuntimeError(self.reduce_error)
        tensor.mul_(self.world)


def planned(backend: str, world: int, strategy: str = "ddp"):
    from ftc.compiler.plan import Decision, HardwareRef, Plan

    def fixed(value):
        return Decision(value, "fixed by the test")

    name = {"cpu": "cpu", "cuda": "H100-80GB", "npu": "Ascend910B-64GB"}[backend]
    return Plan(
        hardware=HardwareRef(name, devices_per_node=world),
        backend=fixed(backend),
        precision=fixed("fp32"),
        strategy=fixed(strategy),
        world_size=fixed(world),
        micro_batch_size=fixed(1),
        gradient_accumulation_steps=fixed(1),
        gradient_checkpointing=fixed(False),
    )


def in_world(monkeypatch, world: int, rank: int = 0) -> None:
    for name, value in {"WORLD_SIZE": world, "RANK": rank, "LOCAL_RANK": rank}.items():
        monkeypatch.setenv(name, str(value))


def test_preflight_reports_every_rank_and_opens_gloo_with_the_spec_timeout(monkeypatch, capsys):
    from ftc.runtime import distributed

    in_world(monkeypatch, 4)
    fake = FakeCollectives(4)
    fake.install(monkeypatch)
    reports = distributed.preflight(planned("cpu", 4), collective_timeout_s=77)
    init = dict(fake.calls)["init"]
    assert init["backend"] == "gloo" and init["timeout"].total_seconds() == 77 and init["device_id"] is None
    assert [report.rank for report in reports] == [0, 1, 2, 3]
    distributed.show_preflight(reports)
    shown = capsys.readouterr().out
    assert "4 ranks on 2 host(s)" in shown and "rank 3 on node-1: cpu (gloo)" in shown


def test_npu_plans_import_torch_npu_bind_the_local_device_and_use_hccl(monkeypatch):
    import types

    import torch

    from ftc.runtime import distributed

    imported, bound = [], []
    real_import = distributed.importlib.import_module
    monkeypatch.setattr(
        distributed.importlib,
        "import_module",
        lambda name: imported.append(name) or (types.ModuleType(name) if name == "torch_npu" else real_import(name)),
    )
    monkeypatch.setattr(torch, "npu", types.SimpleNamespace(set_device=bound.append), raising=False)
    in_world(monkeypatch, 2, rank=1)
    assert distributed._bind_device(distributed.DEVICE_BACKENDS["npu"]) == "npu:1"
    assert imported == ["torch_npu"] and bound == [1]
    assert distributed.DEVICE_BACKENDS["npu"].collective == "hccl"
    assert distributed.DEVICE_BACKENDS["npu"].visible_devices == "ASCEND_RT_VISIBLE_DEVICES"
    # ...and the process group is opened with hccl, bound to that device.
    fake = FakeCollectives(2)
    fake.install(monkeypatch)
    monkeypatch.setattr(distributed, "_bind_device", lambda backend: "cpu")  # no NPU here to put the tensor on
    distributed.preflight(planned("npu", 2), collective_timeout_s=60)
    assert dict(fake.calls)["init"]["backend"] == "hccl"


def test_a_rank_that_never_answers_is_named_with_its_host(monkeypatch):
    from ftc.runtime import distributed
    from ftc.runtime.errors import RuntimeUserError

    in_world(monkeypatch, 2)
    monkeypatch.setattr(distributed.socket, "gethostname", lambda: "gpu-17")
    FakeCollectives(2, barrier_error="Ranks 1 failed to pass monitoredBarrier in 300000 ms").install(monkeypatch)
    with pytest.raises(RuntimeUserError) as caught:
        distributed.preflight(planned("cpu", 2), collective_timeout_s=60)
    assert "rank 0 on gpu-17" in caught.value.message and "Ranks 1 failed" in caught.value.message


def test_a_failing_device_collective_names_the_rank_host_and_backend(monkeypatch):
    from ftc.runtime import distributed
    from ftc.runtime.errors import RuntimeUserError

    in_world(monkeypatch, 2, rank=1)
    monkeypatch.setattr(distributed.socket, "gethostname", lambda: "gpu-3")
    FakeCollectives(2, reduce_error="NCCL error: unhandled system error").install(monkeypatch)
    monkeypatch.setattr(distributed, "_bind_device", lambda backend: "cpu")
    with pytest.raises(RuntimeUserError) as caught:
        distributed.preflight(planned("cuda", 2), collective_timeout_s=60)
    assert "nccl all-reduce failed on rank 1 (gpu-3" in caught.value.message
    assert "NCCL_SOCKET_IFNAME" in caught.value.hint


def test_a_world_other_than_the_plans_is_refused_before_anything_opens(monkeypatch):
    from ftc.runtime import distributed
    from ftc.runtime.errors import RuntimeUserError

    in_world(monkeypatch, 8)
    with pytest.raises(RuntimeUserError, match="started 8 process"):
        distributed.preflight(planned("cuda", 16), collective_timeout_s=60)


def test_strategy_arguments_point_the_trainer_at_the_generated_configs(tmp_path, tiny_model_dir, data_path):
    from ftc.runtime.run_folder import load_run_folder
    from ftc.runtime.trainer_args import strategy_arguments

    for strategy, expected in (("ddp", {"ddp_find_unused_parameters": False}), ("fsdp", {"fsdp": True})):
        job = tiny_job(tmp_path / strategy, tiny_model_dir, data_path, "2xcpu", strategy=strategy)
        (tmp_path / strategy).mkdir()
        write_job(LocalTarget(), job, overwrite=False)
        arguments = strategy_arguments(load_run_folder(job.run_dir))
        assert arguments["ddp_backend"] == "gloo" and arguments["ddp_timeout"] == 1800
        assert expected.items() <= arguments.items()
        if strategy == "fsdp":
            assert arguments["fsdp_config"]["version"] == 2 and "mixed_precision" not in arguments["fsdp_config"]


def test_a_zero_plan_without_deepspeed_installed_is_a_user_error(tmp_path, monkeypatch, tiny_model_dir, data_path):
    import importlib.util

    from ftc.runtime.errors import RuntimeUserError
    from ftc.runtime.run_folder import load_run_folder
    from ftc.runtime.trainer_args import strategy_arguments

    job = tiny_job(tmp_path, tiny_model_dir, data_path, "2xcpu")
    job = dataclasses.replace(job, plan=planned("cuda", 2, strategy="zero2"))
    write_job(LocalTarget(), job, overwrite=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "deepspeed" else real_find_spec(name))
    with pytest.raises(RuntimeUserError, match="DeepSpeed, which is not installed") as caught:
        strategy_arguments(load_run_folder(job.run_dir))
    assert "ftc[distributed]" in caught.value.hint


def test_a_process_group_that_cannot_form_is_named_not_a_traceback(monkeypatch):
    import torch.distributed as dist

    from ftc.runtime import distributed
    from ftc.runtime.errors import RuntimeUserError

    in_world(monkeypatch, 2, rank=1)
    monkeypatch.setattr(distributed.socket, "gethostname", lambda: "gpu-9")
    FakeCollectives(2).install(monkeypatch)

    def store_timeout(**kwargs):
        raise RuntimeError("Timed out after 61 seconds waiting for clients. 1/2 clients joined.")

    monkeypatch.setattr(dist, "init_process_group", store_timeout)
    with pytest.raises(RuntimeUserError) as caught:
        distributed.preflight(planned("cpu", 2), collective_timeout_s=60)
    assert "rank 1 on gpu-9 could not join the gloo process group within 60 s" in caught.value.message
    assert "1/2 clients joined" in caught.value.message
