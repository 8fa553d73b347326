"""Make sure the run trains on the backend its plan was made for, and fail loudly otherwise.

A run planned for NPUs whose torch cannot see them does not fail by itself: transformers quietly
trains on the CPU, hundreds of times slower. So before anything loads, the plan's backend is checked
against what torch offers, and once the trainer is built, against the device it really chose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ftc.compiler.plan import Plan
from ftc.devices.backends import BACKENDS, Backend
from ftc.devices.torch_devices import torch_devices
from ftc.errors import RuntimeUserError

_REPLAN = "or plan for the hardware that is here (`ftc launch --hardware auto`)"


def check_backend(plan: Plan) -> None:
    """Fail unless torch can use the plan's backend, with as many devices as the plan has per node."""
    backend = BACKENDS.get(plan.backend.value)
    if backend is None:
        raise RuntimeUserError(
            f"the plan's backend {plan.backend.value!r} is unknown to the runtime", "regenerate the run folder"
        )
    if backend.device_module is None:  # the host itself
        return
    devices = _USABLE.get(backend.name, _usable)(plan, backend)
    _check_count(plan, devices.device_count(), backend.visible_devices)


def _usable(plan: Plan, backend: Backend) -> Any:
    """torch's module for the backend's devices, once it says they are available; why not, where it is not."""
    try:
        devices = torch_devices(backend)
    except ImportError as error:  # its plugin
        raise RuntimeUserError(
            f"the plan is for {backend.devices} ({plan.hardware.label()}) but {error.name} is not installed",
            f"install the {error.name} matching this torch, {_REPLAN}",
        ) from None
    if not devices.is_available():
        raise RuntimeUserError(
            f"the plan is for {backend.devices} ({plan.hardware.label()}) but torch sees none",
            f"check {backend.visible_devices}, {_REPLAN}",
        )
    return devices


def _usable_cuda(plan: Plan, backend: Backend) -> Any:
    import torch

    if not torch.cuda.is_available():
        why = (
            "this torch was built without CUDA"
            if torch.version.cuda is None
            else f"torch sees no CUDA device (driver, or {backend.visible_devices})"
        )
        raise RuntimeUserError(
            f"the plan is for CUDA ({plan.hardware.label()}) but {why}",
            f"install the CUDA build of torch and check nvidia-smi, {_REPLAN}",
        )
    return torch.cuda


def _usable_npu(plan: Plan, backend: Backend) -> Any:
    import torch

    try:
        devices = torch_devices(backend)  # imports torch_npu, which registers torch.npu
    except ImportError:
        raise RuntimeUserError(
            f"the plan is for Ascend NPUs ({plan.hardware.label()}) but {backend.plugin} is not installed",
            f"install the {backend.plugin} matching torch {torch.__version__}, {_REPLAN}",
        ) from None
    if not devices.is_available():
        raise RuntimeUserError(
            f"the plan is for Ascend NPUs ({plan.hardware.label()}) but {backend.plugin} sees no NPU",
            f"source the CANN toolkit's set_env.sh and check npu-smi and {backend.visible_devices}, " + _REPLAN,
        )
    return devices


# Where torch can say more precisely why a backend's devices are not usable; any other backend gets `_usable`.
_USABLE: dict[str, Callable[[Plan, Backend], Any]] = {"cuda": _usable_cuda, "npu": _usable_npu}


def check_trainer_device(trainer: Any, plan: Plan) -> None:
    """The device the trainer chose is of the plan's backend: nothing fell back to the CPU on its own."""
    chosen = trainer.args.device.type
    if chosen != plan.backend.value:
        raise RuntimeUserError(
            f"the plan is for {plan.backend.value} but the trainer chose {chosen}",
            f"make {plan.backend.value} visible to this process, {_REPLAN}",
        )


def _check_count(plan: Plan, visible: int, variable: str | None) -> None:
    wanted = plan.hardware.devices_per_node
    if visible < wanted:
        raise RuntimeUserError(
            f"the plan is for {wanted} {plan.backend.value} device(s) per node but torch sees {visible}",
            f"check {variable}, {_REPLAN}",
        )
