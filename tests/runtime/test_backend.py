"""The plan's backend is the one in use: CUDA and Ascend NPUs mocked, so every branch runs on a CPU machine."""

from __future__ import annotations

import sys
import types
from dataclasses import replace
from types import SimpleNamespace

import pytest

from ftc.compiler.plan import Decision, HardwareRef
from ftc.errors import RuntimeUserError
from ftc.runtime.distributed.backend_check import check_backend, check_trainer_device
from tests.tiny_runs import cpu_plan


def plan_for(backend: str, devices: int = 1):
    return replace(
        cpu_plan("bf16"), hardware=HardwareRef("h100", devices), backend=Decision(backend, "fixed by the test")
    )


@pytest.fixture
def fake_cuda(monkeypatch):
    import torch

    def install(available: bool, count: int = 0, built_with: str | None = "12.4"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.version, "cuda", built_with)

    return install


@pytest.fixture
def fake_torch_npu(monkeypatch):
    """Install a stand-in torch_npu whose import registers torch.npu, as the real one does."""
    import torch

    def install(available: bool, count: int = 0):
        monkeypatch.setitem(sys.modules, "torch_npu", types.ModuleType("torch_npu"))
        npu = SimpleNamespace(is_available=lambda: available, device_count=lambda: count)
        monkeypatch.setattr(torch, "npu", npu, raising=False)

    return install


def test_a_cpu_plan_needs_nothing():
    check_backend(cpu_plan())


def test_cuda_in_use_passes(fake_cuda):
    fake_cuda(available=True, count=8)
    check_backend(plan_for("cuda", 8))


def test_a_cuda_plan_on_a_cpu_only_torch_says_so(fake_cuda):
    fake_cuda(available=False, built_with=None)
    with pytest.raises(RuntimeUserError) as caught:
        check_backend(plan_for("cuda"))
    assert "the plan is for CUDA" in caught.value.message and "built without CUDA" in caught.value.message
    assert "CUDA build of torch" in caught.value.hint


def test_a_cuda_plan_without_a_visible_device_says_so(fake_cuda):
    fake_cuda(available=False, built_with="12.4")
    with pytest.raises(RuntimeUserError, match="torch sees no CUDA device"):
        check_backend(plan_for("cuda"))


def test_fewer_devices_than_planned_is_an_error(fake_cuda):
    fake_cuda(available=True, count=4)
    with pytest.raises(RuntimeUserError) as caught:
        check_backend(plan_for("cuda", 8))
    assert "8 cuda device(s) per node but torch sees 4" in caught.value.message
    assert "CUDA_VISIBLE_DEVICES" in caught.value.hint


def test_an_npu_plan_without_torch_npu_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # import fails, whether or not it is installed
    with pytest.raises(RuntimeUserError) as caught:
        check_backend(plan_for("npu"))
    assert "torch_npu is not installed" in caught.value.message and "torch_npu matching torch" in caught.value.hint


def test_an_npu_plan_where_torch_npu_sees_no_device_says_so(fake_torch_npu):
    fake_torch_npu(available=False)
    with pytest.raises(RuntimeUserError) as caught:
        check_backend(plan_for("npu"))
    assert "torch_npu sees no NPU" in caught.value.message and "set_env.sh" in caught.value.hint


def test_npus_in_use_pass(fake_torch_npu):
    fake_torch_npu(available=True, count=8)
    check_backend(plan_for("npu", 8))


def test_a_trainer_that_fell_back_to_the_cpu_is_caught():
    import torch

    trainer = SimpleNamespace(args=SimpleNamespace(device=torch.device("cpu")))
    with pytest.raises(RuntimeUserError, match="the plan is for npu but the trainer chose cpu"):
        check_trainer_device(trainer, plan_for("npu"))
    check_trainer_device(trainer, cpu_plan())
