"""Hardware detection, with the device queries mocked: no test needs a GPU."""

import subprocess
import sys
import types

import pytest

from ftc.devices import detect
from ftc.errors import FtcError

H100_SMI = "NVIDIA H100 80GB HBM3, 81559\n" * 8
A100_40_SMI = "NVIDIA A100-SXM4-40GB, 40960\nNVIDIA A100-SXM4-40GB, 40960\n"


@pytest.mark.parametrize(
    "output, name, count",
    [
        (H100_SMI, "H100-80GB", 8),
        (A100_40_SMI, "A100-40GB", 2),
        ("NVIDIA A100-SXM4-80GB, 81920\n", "A100-80GB", 1),
        ("NVIDIA L4, 23034\n", "L4-24GB", 1),
        ("NVIDIA L40S, 46068\n", "L40S-48GB", 1),
        ("NVIDIA GeForce RTX 4090, 24564\n", "RTX4090-24GB", 1),
        ("Tesla T4, 15360\n", "T4-16GB", 1),
    ],
)
def test_nvidia_smi_output_maps_to_the_registry(output, name, count):
    assert detect.parse_nvidia_smi(output) == (name, count)


def test_unknown_and_mixed_gpus_are_errors_with_a_hint():
    with pytest.raises(FtcError) as unknown:
        detect.parse_nvidia_smi("NVIDIA B300, 288000\n")
    assert "--hardware" in unknown.value.hint
    with pytest.raises(FtcError) as mixed:
        detect.parse_nvidia_smi("NVIDIA L4, 23034\nTesla T4, 15360\n")
    assert "mixes" in mixed.value.message


def test_detection_runs_nvidia_smi_when_present(monkeypatch):
    monkeypatch.setattr(detect.shutil, "which", lambda tool: "/usr/bin/nvidia-smi" if tool == "nvidia-smi" else None)
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=H100_SMI, stderr="")

    monkeypatch.setattr(detect.subprocess, "run", fake_run)
    found = detect.detect_hardware(nodes=2)
    assert (found.hardware.name, found.hardware.devices_per_node, found.hardware.nodes) == ("H100-80GB", 8, 2)
    assert calls[0][0] == "nvidia-smi" and found.how == "nvidia-smi"


def test_npu_is_found_through_torch_npu(monkeypatch):
    monkeypatch.setattr(detect.shutil, "which", lambda tool: None)
    monkeypatch.setattr(detect.importlib.util, "find_spec", lambda name: object() if name == "torch_npu" else None)
    properties = types.SimpleNamespace(name="Ascend910B3", total_memory=64 * 2**30)
    npu = types.SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 8, get_device_properties=lambda index: properties
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(npu=npu))
    monkeypatch.setitem(sys.modules, "torch_npu", types.ModuleType("torch_npu"))
    found = detect.detect_hardware()
    assert (found.hardware.name, found.hardware.devices_per_node, found.how) == ("Ascend910B-64GB", 8, "torch.npu")
    assert detect.detect_hardware(nodes=4).hardware.nodes == 4  # --nodes holds when torch does the finding


def test_without_drivers_it_is_the_cpu_and_torch_is_not_imported(monkeypatch):
    monkeypatch.setattr(detect.shutil, "which", lambda tool: None)
    monkeypatch.setattr(detect.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(detect.os.path, "exists", lambda path: False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    found = detect.detect_hardware()
    assert found.hardware.name == "cpu" and "torch" not in sys.modules
