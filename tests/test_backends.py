"""The device backends are records: every layer reads them, and a backend that exists only as a record is served."""

from __future__ import annotations

import sys
import types
from dataclasses import replace

import pytest

from ftc.compiler.hardware import HARDWARE
from ftc.compiler.plan import Decision
from ftc.devices import backends
from ftc.devices.backends import BACKENDS, AllocatorPeaks, Backend, DockerDevices
from ftc.devices.torch_devices import torch_devices
from ftc.errors import RuntimeUserError
from tests.targets.rendering import make_job

# A backend that no code names: only its record says what it is.
FAKE = Backend(
    "fakedev",
    "Fake accelerator",
    "fake devices",
    collective="fakeccl",
    visible_devices="FAKE_VISIBLE_DEVICES",
    device_module="torch.fakedev",
    plugin="torch_fakedev",
    peaks=AllocatorPeaks(),
    docker=DockerDevices(per_device=("/dev/fake{index}",), host_paths=("/opt/fake/driver",)),
    slurm_gpus=True,
)


def test_every_hardware_record_names_a_backend_record():
    assert {record.backend for record in HARDWARE.values()} == set(BACKENDS)


def test_each_backend_keeps_what_the_layers_read_today():
    cuda, npu, cpu = BACKENDS["cuda"], BACKENDS["npu"], BACKENDS["cpu"]
    assert (cuda.collective, npu.collective, cpu.collective) == ("nccl", "hccl", "gloo")
    assert (cuda.visible_devices, npu.visible_devices, cpu.visible_devices) == (
        "CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", None
    )  # fmt: skip
    assert cpu.peaks is None and cpu.device_module is None and cpu.detection is None  # the host is the device
    assert cuda.docker.run_flags(8) == ["--gpus", "all", "--env", "CUDA_VISIBLE_DEVICES"]
    assert npu.docker.run_flags(2)[:3] == [
        "--device=/dev/davinci0", "--device=/dev/davinci1", "--device=/dev/davinci_manager"
    ]  # fmt: skip
    assert cpu.docker.run_flags(4) == []
    assert [backend.name for backend in BACKENDS.values() if not backend.bitsandbytes] == ["npu"]


def test_the_records_import_no_torch():
    # Every layer reads them, planning and launching included, so they must stay as light as the spec.
    assert not {"torch", "importlib", "ftc.devices.torch_devices"} & set(vars(backends))


def test_torch_devices_imports_the_plugin_before_it_asks_torch(monkeypatch):
    import torch

    fakedev = types.SimpleNamespace()
    plugin = types.ModuleType("torch_fakedev")
    monkeypatch.setitem(sys.modules, "torch_fakedev", plugin)
    monkeypatch.setattr(torch, "fakedev", fakedev, raising=False)
    assert torch_devices(FAKE) is fakedev
    monkeypatch.setitem(sys.modules, "torch_fakedev", None)  # the plugin is missing: the import says so
    with pytest.raises(ImportError):
        torch_devices(FAKE)
    with pytest.raises(LookupError):
        torch_devices(BACKENDS["cpu"])


@pytest.fixture
def fake_backend(monkeypatch, tmp_path):
    """A plan on the fake backend, with FAKE registered and a torch.fakedev that sees 4 devices."""
    import torch

    monkeypatch.setitem(BACKENDS, FAKE.name, FAKE)
    monkeypatch.setitem(sys.modules, "torch_fakedev", types.ModuleType("torch_fakedev"))
    devices = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 4,
        max_memory_allocated=lambda: 3 * 1024**3,
        max_memory_reserved=lambda: 5 * 1024**3,
    )
    monkeypatch.setattr(torch, "fakedev", devices, raising=False)
    job = make_job(tmp_path, hardware="4xH100-80GB")
    return replace(job, plan=replace(job.plan, backend=Decision(FAKE.name, "fixed by the test")))


def test_a_backend_that_is_only_a_record_reaches_the_targets(fake_backend):
    from ftc.targets.docker import device_flags
    from ftc.targets.launcher import visible_devices
    from ftc.targets.slurm import gpus_per_node

    job = fake_backend
    assert visible_devices(job) == ("FAKE_VISIBLE_DEVICES", "0,1,2,3")
    assert device_flags(job) == [*(f"--device=/dev/fake{index}" for index in range(4)),
                                 "--volume=/opt/fake/driver:/opt/fake/driver:ro"]  # fmt: skip
    assert gpus_per_node(job.plan) == 4


def test_a_backend_that_is_only_a_record_is_checked_and_measured_by_the_runtime(fake_backend):
    import torch

    from ftc.runtime.distributed.backend_check import check_backend
    from ftc.runtime.distributed.peak_memory import measured_peak

    plan = fake_backend.plan
    check_backend(plan)  # 4 devices planned, 4 seen
    assert measured_peak(plan) == {"allocated_gib": 3.0, "reserved_gib": 5.0}
    torch.fakedev.device_count = lambda: 2
    with pytest.raises(RuntimeUserError) as fewer:
        check_backend(plan)
    assert "torch sees 2" in fewer.value.message and "FAKE_VISIBLE_DEVICES" in fewer.value.hint
    torch.fakedev.is_available = lambda: False
    with pytest.raises(RuntimeUserError, match="the plan is for fake devices .* but torch sees none"):
        check_backend(plan)
