"""Make sure the run trains on the backend its plan was made for, and fail loudly otherwise.

A run planned for NPUs whose torch cannot see them does not fail by itself: transformers quietly
trains on the CPU, hundreds of times slower. So before anything loads, the plan's backend is checked
against what torch offers, and once the trainer is built, against the device it really chose.
"""

from __future__ import annotations

import importlib
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError

_REPLAN = "or plan for the hardware that is here (`ftc launch --hardware auto`)"


def check_backend(plan: Plan) -> None:
    """Fail unless torch can use the plan's backend, with as many devices as the plan has per node."""
    backend = plan.backend.value
    if backend == "cpu":
        return
    import torch

    if backend == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch was built without CUDA"
                if torch.version.cuda is None
                else "torch sees no CUDA device (driver, or CUDA_VISIBLE_DEVICES)"
            )
            raise RuntimeUserError(
                f"the plan is for CUDA ({plan.hardware.label()}) but {why}",
                f"install the CUDA build of torch and check nvidia-smi, {_REPLAN}",
            )
        _check_count(plan, torch.cuda.device_count(), "CUDA_VISIBLE_DEVICES")
        return
    if backend == "npu":
        try:
            importlib.import_module("torch_npu")  # registers torch.npu
        except ImportError:
            raise RuntimeUserError(
                f"the plan is for Ascend NPUs ({plan.hardware.label()}) but torch_npu is not installed",
                f"install the torch_npu matching torch {torch.__version__}, {_REPLAN}",
            ) from None
        if not torch.npu.is_available():
            raise RuntimeUserError(
                f"the plan is for Ascend NPUs ({plan.hardware.label()}) but torch_npu sees no NPU",
                "source the CANN toolkit's set_env.sh and check npu-smi and ASCEND_RT_VISIBLE_DEVICES, " + _REPLAN,
            )
        _check_count(plan, torch.npu.device_count(), "ASCEND_RT_VISIBLE_DEVICES")
        return
    raise RuntimeUserError(f"the plan's backend {backend!r} is unknown to the runtime", "regenerate the run folder")


def check_trainer_device(trainer: Any, plan: Plan) -> None:
    """The device the trainer chose is of the plan's backend: nothing fell back to the CPU on its own."""
    chosen = trainer.args.device.type
    if chosen != plan.backend.value:
        raise RuntimeUserError(
            f"the plan is for {plan.backend.value} but the trainer chose {chosen}",
            f"make {plan.backend.value} visible to this process, {_REPLAN}",
        )


def _check_count(plan: Plan, visible: int, variable: str) -> None:
    wanted = plan.hardware.devices_per_node
    if visible < wanted:
        raise RuntimeUserError(
            f"the plan is for {wanted} {plan.backend.value} device(s) per node but torch sees {visible}",
            f"check {variable}, {_REPLAN}",
        )
