"""torch's module for a backend's devices, imported from the names its record holds.

The records stay torch-free so that planning and launching can read them; the hardware detection and
the runtime, which run where torch is, come here to turn the names into torch.cuda or torch.npu.
"""

from __future__ import annotations

import importlib
from operator import attrgetter
from typing import Any

from ftc.devices.backends import Backend


def torch_devices(backend: Backend) -> Any:
    """torch.cuda, torch.npu, ...: the backend's plugin imported first, since torch.npu exists only after torch_npu."""
    if backend.device_module is None:
        raise LookupError(f"the {backend.name} backend has no torch device module: the host is its device")
    if backend.plugin is not None:
        importlib.import_module(backend.plugin)
    import torch

    return attrgetter(backend.device_module.removeprefix("torch."))(torch)
