"""Two CPU processes over gloo, started by the local target's run.sh through torchrun, train what one would.

Each 2-process run — DDP, FSDP and DeepSpeed ZeRO-2/ZeRO-3, LoRA and full — has micro-batch 2 ×
accumulation 2 × 2 ranks, so it sees the same 8 examples per step as one process with 4 accumulation
steps, and its loss curve matches the single-process curve; only the order of floating-point sums differs.
Each run saves a checkpoint halfway, which must resume to the same losses and export as one model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.spec import parse_spec
from ftc.targets.base import Job
from ftc.targets.local import LocalTarget
from ftc.targets.prepare import write_job

STEPS = 4
# Losses of the same 8 examples per step, from the same start; the runs differ only in how the
# gradient sums are ordered (per rank, then all-reduced or reduce-scattered), so they agree to
# float32 rounding (measured over 4 steps of a loss near 6: DDP, FSDP and ZeRO-2 4.8e-7 or less,
# ZeRO-3 full 9.5e-7). A resumed run replays the same sums: its losses after the checkpoint are
# the uninterrupted run's (measured: equal), checked to the same tolerance.
LOSS_TOLERANCE = 1e-5
# A collective that one rank never joins fails within this (seconds) instead of hanging the suite.
COLLECTIVE_TIMEOUT_S = 120


@dataclass(frozen=True)
class TwoProcessRun:
    strategy: str
    method: str
    checkpoint_file: str | None  # what only this strategy writes into a checkpoint: proof that it ran


TWO_PROCESS_RUNS = {
    "ddp": TwoProcessRun("ddp", "lora", None),
    "fsdp": TwoProcessRun("fsdp", "lora", "pytorch_model_fsdp.bin"),
    "fsdp-full": TwoProcessRun("fsdp", "full", "pytorch_model_fsdp.bin"),
    "zero2": TwoProcessRun("zero2", "lora", "global_step2/zero_pp_rank_1_mp_rank_00_optim_states.pt"),
    "zero3-full": TwoProcessRun("zero3", "full", "global_step2/zero_pp_rank_1_mp_rank_00_model_states.pt"),
}
RESUMED = ["ddp", "fsdp", "fsdp-full", "zero3-full"]


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
        "launch": {"collective_timeout_s": COLLECTIVE_TIMEOUT_S},
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
def single_process_losses(tmp_path_factory, tiny_model_dir, data_path):
    """The references by method: one process, accumulating 4 micro-batches of 2, through the runtime's entry point."""
    from ftc.runtime.__main__ import run

    found: dict[str, list[float]] = {}

    def of(method: str) -> list[float]:
        if method not in found:
            job = tiny_job(tmp_path_factory.mktemp(f"single-{method}"), tiny_model_dir, data_path, "cpu", method=method)
            assert (job.plan.world_size.value, job.plan.gradient_accumulation_steps.value) == (1, 4)
            write_job(LocalTarget(), job, overwrite=False)
            run(str(job.run_dir))
            found[method] = losses(json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8")))
            assert len(found[method]) == STEPS and found[method][-1] < found[method][0]
        return found[method]

    return of


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory, tiny_model_dir, data_path):
    """Each named run launched once per module, on first use: (job, metrics.json, output)."""
    done: dict[str, tuple[Job, dict, str]] = {}

    def of(name: str) -> tuple[Job, dict, str]:
        if name not in done:
            run = TWO_PROCESS_RUNS[name]
            folder = tmp_path_factory.mktemp(name)
            job = tiny_job(
                folder, tiny_model_dir, data_path, "2xcpu", strategy=run.strategy, method=run.method, save_steps=2
            )
            plan = job.plan
            shape = plan.strategy.value, plan.world_size.value, plan.gradient_accumulation_steps.value
            assert shape == (run.strategy, 2, 2)
            done[name] = (job, *launched(job))
        return done[name]

    return of


@pytest.mark.slow
def test_of_two_processes_one_prepares_the_data_and_the_other_reads_it(two_process_runs):
    _, metrics, output = two_process_runs("ddp")
    said = [line.split("cache ")[1].split(":")[0] for line in output.splitlines() if line.startswith("data prepared")]
    assert sorted(said) == ["hit", "miss"]
    assert metrics["data_preparation"]["records"] == 64  # rank 0's report, whichever of the two prepared


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TWO_PROCESS_RUNS))
def test_two_cpu_processes_match_one_process_with_the_same_global_batch(two_process_runs, single_process_losses, name):
    run = TWO_PROCESS_RUNS[name]
    job, metrics, output = two_process_runs(name)
    assert "pre-flight: 2 ranks on 1 host(s) joined an all-reduce" in output
    assert "rank 1 on" in output and "(gloo)" in output
    deviation = max(abs(a - b) for a, b in zip(losses(metrics), single_process_losses(run.method), strict=True))
    print(f"{name}: largest loss deviation from one process {deviation:.2e}")
    assert deviation <= LOSS_TOLERANCE
    checkpoint = job.run_dir / "checkpoints" / "checkpoint-2"
    if run.checkpoint_file is not None:  # the strategy's own engine trained and saved, not a DDP fallback
        assert (checkpoint / run.checkpoint_file).is_file(), sorted(p.name for p in checkpoint.iterdir())
    if run.strategy == "fsdp":  # the run read the fsdp.json generated for it
        wrapped = json.loads((job.run_dir / "fsdp.json").read_text(encoding="utf-8"))
        assert wrapped["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    if run.strategy.startswith("zero"):  # ...and the deepspeed.json generated for it
        config = json.loads((job.run_dir / "deepspeed.json").read_text(encoding="utf-8"))
        assert config["zero_optimization"]["stage"] == int(run.strategy[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TWO_PROCESS_RUNS))
@pytest.mark.parametrize("checkpoint", [None, "checkpoint-2"])
def test_what_two_processes_saved_exports_as_one_whole_model(two_process_runs, tmp_path, name, checkpoint):
    from safetensors.torch import load_file

    from ftc.runtime.export import export

    job, _, _ = two_process_runs(name)
    exported = export(job.run_dir, tmp_path / "merged", checkpoint, "auto", False)
    assert sorted(path.name for path in exported.glob("*.safetensors")) == ["model.safetensors"]  # one file
    merged = load_file(exported / "model.safetensors")
    base = load_file(Path(job.spec.model.name_or_path) / "model.safetensors")
    assert set(merged) == set(base)  # LoRA merged away: the base's own tensors...
    assert all(merged[name].shape == base[name].shape for name in base)  # ...whole, not one rank's shards
    moved = [name for name in base if not (merged[name] == base[name]).all()]
    assert any("q_proj" in name for name in moved)  # the gathered update is in the weights
    if TWO_PROCESS_RUNS[name].method == "full":  # every weight trained, the embeddings included
        assert len(moved) == len(base)


@pytest.mark.slow
@pytest.mark.parametrize("name", RESUMED)
def test_a_checkpoint_resumes_to_the_same_losses(two_process_runs, name):
    job, metrics, _ = two_process_runs(name)
    trained = job.run_dir / ("adapter" if TWO_PROCESS_RUNS[name].method == "lora" else "model")
    for finished in (job.run_dir / "checkpoints" / "checkpoint-4", trained):
        shutil.rmtree(finished)
    (job.run_dir / "metrics.json").unlink()
    result = subprocess.run(["bash", str(job.run_dir / "run.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "resuming from checkpoint-2" in result.stdout + result.stderr
    assert trained.is_dir()
    resumed = json.loads((job.run_dir / "metrics.json").read_text(encoding="utf-8"))
    after = {entry["step"]: entry["loss"] for entry in resumed["log"] if "loss" in entry and entry["step"] > 2}
    before = {entry["step"]: entry["loss"] for entry in metrics["log"] if "loss" in entry and entry["step"] > 2}
    assert after.keys() == {3, 4}
    assert after == pytest.approx(before, abs=LOSS_TOLERANCE)


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
    from ftc.runtime.distributed import process_group as distributed

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
    import importlib
    import types

    import torch

    from ftc.devices.backends import BACKENDS
    from ftc.runtime.distributed import process_group as distributed

    imported, bound = [], []
    real_import = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name: imported.append(name) or (types.ModuleType(name) if name == "torch_npu" else real_import(name)),
    )
    monkeypatch.setattr(torch, "npu", types.SimpleNamespace(set_device=bound.append), raising=False)
    in_world(monkeypatch, 2, rank=1)
    assert distributed._bind_device(BACKENDS["npu"]) == "npu:1"
    assert imported == ["torch_npu"] and bound == [1]
    assert BACKENDS["npu"].collective == "hccl"
    assert BACKENDS["npu"].visible_devices == "ASCEND_RT_VISIBLE_DEVICES"
    # ...and the process group is opened with hccl, bound to that device.
    fake = FakeCollectives(2)
    fake.install(monkeypatch)
    monkeypatch.setattr(distributed, "_bind_device", lambda backend: "cpu")  # no NPU here to put the tensor on
    distributed.preflight(planned("npu", 2), collective_timeout_s=60)
    assert dict(fake.calls)["init"]["backend"] == "hccl"


def test_cpu_processes_have_deepspeed_use_its_cpu_accelerator_even_beside_a_gpu(monkeypatch):
    from ftc.devices.backends import BACKENDS
    from ftc.runtime.distributed import process_group as distributed

    monkeypatch.setenv("DS_ACCELERATOR", "cuda")  # what DeepSpeed would pick on its own on a host with a GPU
    assert distributed._bind_device(BACKENDS["cpu"]) == "cpu"
    assert os.environ["DS_ACCELERATOR"] == "cpu"


def test_a_rank_that_never_answers_is_named_with_its_host(monkeypatch):
    from ftc.errors import RuntimeUserError
    from ftc.runtime.distributed import process_group as distributed

    in_world(monkeypatch, 2)
    monkeypatch.setattr(distributed.socket, "gethostname", lambda: "gpu-17")
    FakeCollectives(2, barrier_error="Ranks 1 failed to pass monitoredBarrier in 300000 ms").install(monkeypatch)
    with pytest.raises(RuntimeUserError) as caught:
        distributed.preflight(planned("cpu", 2), collective_timeout_s=60)
    assert "rank 0 on gpu-17" in caught.value.message and "Ranks 1 failed" in caught.value.message


def test_a_failing_device_collective_names_the_rank_host_and_backend(monkeypatch):
    from ftc.errors import RuntimeUserError
    from ftc.runtime.distributed import process_group as distributed

    in_world(monkeypatch, 2, rank=1)
    monkeypatch.setattr(distributed.socket, "gethostname", lambda: "gpu-3")
    FakeCollectives(2, reduce_error="NCCL error: unhandled system error").install(monkeypatch)
    monkeypatch.setattr(distributed, "_bind_device", lambda backend: "cpu")
    with pytest.raises(RuntimeUserError) as caught:
        distributed.preflight(planned("cuda", 2), collective_timeout_s=60)
    assert "nccl all-reduce failed on rank 1 (gpu-3" in caught.value.message
    assert "NCCL_SOCKET_IFNAME" in caught.value.hint


def test_a_world_other_than_the_plans_is_refused_before_anything_opens(monkeypatch):
    from ftc.errors import RuntimeUserError
    from ftc.runtime.distributed import process_group as distributed

    in_world(monkeypatch, 8)
    with pytest.raises(RuntimeUserError, match="started 8 process"):
        distributed.preflight(planned("cuda", 16), collective_timeout_s=60)


def test_strategy_arguments_point_the_trainer_at_the_generated_configs(tmp_path, tiny_model_dir, data_path):
    from ftc.runs.folder import load_run_folder
    from ftc.runtime.trainer_args import strategy_arguments

    for strategy, expected in (
        ("ddp", {"ddp_find_unused_parameters": False}),
        ("fsdp", {"fsdp": True}),
        ("zero2", {"deepspeed": str(tmp_path / "zero2" / "run" / "deepspeed.json")}),
    ):
        job = tiny_job(tmp_path / strategy, tiny_model_dir, data_path, "2xcpu", strategy=strategy)
        (tmp_path / strategy).mkdir()
        write_job(LocalTarget(), job, overwrite=False)
        arguments = strategy_arguments(load_run_folder(job.run_dir))
        assert arguments["ddp_backend"] == "gloo" and arguments["ddp_timeout"] == COLLECTIVE_TIMEOUT_S
        assert expected.items() <= arguments.items()
        if strategy == "fsdp":
            assert arguments["fsdp_config"]["version"] == 2 and "mixed_precision" not in arguments["fsdp_config"]


def test_a_zero_plan_of_cpu_processes_without_a_compiler_is_a_user_error_unless_deepspeed_built_its_op(
    tmp_path, monkeypatch, tiny_model_dir, data_path
):
    import deepspeed.git_version_info

    from ftc.errors import RuntimeUserError
    from ftc.runs.folder import load_run_folder
    from ftc.runtime.trainer_args import CPU_COMM_OP, strategy_arguments

    job = tiny_job(tmp_path, tiny_model_dir, data_path, "2xcpu", strategy="zero3")
    write_job(LocalTarget(), job, overwrite=False)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(RuntimeUserError, match=r"no C\+\+ compiler") as caught:
        strategy_arguments(load_run_folder(job.run_dir))
    assert "'zero3' on CPU processes" in caught.value.message and "'ddp' or 'fsdp'" in caught.value.hint
    monkeypatch.setitem(deepspeed.git_version_info.installed_ops, CPU_COMM_OP, True)  # built when DeepSpeed was
    assert strategy_arguments(load_run_folder(job.run_dir))["deepspeed"].endswith("deepspeed.json")


def test_a_zero_plan_without_deepspeed_installed_is_a_user_error(tmp_path, monkeypatch, tiny_model_dir, data_path):
    import importlib.util

    from ftc.errors import RuntimeUserError
    from ftc.runs.folder import load_run_folder
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

    from ftc.errors import RuntimeUserError
    from ftc.runtime.distributed import process_group as distributed

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


# The plan's strategy broken on purpose in the run folder's generated config: the libraries then prepare
# the model otherwise, and the runtime's plan check must stop the run before its first step.
BROKEN_STRATEGIES = {
    "fsdp": ("fsdp.json", {"auto_wrap_policy": "NO_WRAP", "transformer_layer_cls_to_wrap": None}, "0 of 2 layers"),
    "zero2": ("deepspeed.json", {"zero_optimization": {"stage": 1}}, "DeepSpeed reports ZeRO stage 1"),
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(BROKEN_STRATEGIES))
def test_a_run_the_libraries_prepare_otherwise_than_planned_stops_before_its_first_step(
    tmp_path, tiny_model_dir, data_path, strategy
):
    job = tiny_job(tmp_path, tiny_model_dir, data_path, "2xcpu", strategy=strategy)
    rendered = write_job(LocalTarget(), job, overwrite=False)
    file_name, changes, found = BROKEN_STRATEGIES[strategy]
    config_path = job.run_dir / file_name
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict):
            config[key].update(value)
        elif value is None:
            config.pop(key, None)
        else:
            config[key] = value
    config_path.write_text(json.dumps(config), encoding="utf-8")
    result = subprocess.run(rendered.command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Each rank says so as a user error (its own line, with the hint), not as a traceback.
    assert "error: the libraries did not prepare the model as planned" in output and found in output, output[-3000:]
    assert "constraints.txt" in output
    metrics = job.run_dir / "metrics.json"
    assert not metrics.exists() or not losses(json.loads(metrics.read_text(encoding="utf-8")))
