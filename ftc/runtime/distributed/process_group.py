"""Several processes: the device backend's collective library, and a pre-flight every rank joins.

Under torchrun each process learns its place from RANK, LOCAL_RANK and WORLD_SIZE. Before anything
heavy loads, `preflight` opens the process group with the spec's collective timeout, checks that the
launcher started the world the plan was made for, and has every rank join one all-reduce on its
device and report its host, device and backend. A rank that cannot join is named (rank and host)
within the pre-flight's own short wait, instead of the run hanging until a watchdog fires.

Importing this module is cheap; torch is imported inside the functions. What each backend uses (its collective,
the module that registers it with torch) is its record in ftc.devices.backends.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ftc.devices.backends import BACKENDS, Backend
from ftc.devices.torch_devices import torch_devices
from ftc.errors import RuntimeUserError

# The wait for every rank to answer the pre-flight: long enough for a slow node to finish its imports.
PREFLIGHT_TIMEOUT_S = 300


@dataclass(frozen=True)
class RankReport:
    rank: int
    host: str
    device: str
    backend: str

    def line(self) -> str:
        return f"rank {self.rank} on {self.host}: {self.device} ({self.backend})"


def world_size() -> int:
    """Processes the launcher started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def preflight(plan: Any, collective_timeout_s: int) -> list[RankReport]:
    """Open the process group and have every rank report in; returns the reports (empty for one process)."""
    started = world_size()
    if started == 1 and plan.world_size.value == 1:
        return []
    if started != plan.world_size.value:
        raise RuntimeUserError(
            f"the launcher started {started} process(es) but the plan is for {plan.world_size.value} "
            f"({plan.hardware.label()})",
            "launch through the run folder's script, which starts the plan's world; or plan for this one",
        )
    backend = BACKENDS[plan.backend.value]
    device = _bind_device(backend)
    import torch
    import torch.distributed as dist

    here = RankReport(rank(), socket.gethostname(), device, backend.collective)
    if not dist.is_initialized():
        try:
            timeout = timedelta(seconds=collective_timeout_s)
            dist.init_process_group(backend=backend.collective, timeout=timeout, device_id=_device_id(device))
        except Exception as error:  # noqa: BLE001  store timeouts and backend errors have their own types
            raise RuntimeUserError(
                f"pre-flight: rank {here.rank} on {here.host} could not join the {backend.collective} process group "
                f"within {collective_timeout_s} s: {_first_line(error)}",
                "a rank that crashed while starting says why in its own log; check MASTER_ADDR/MASTER_PORT",
            ) from None
    # The reports travel over the host's collective (gloo), so a broken device link still lets every rank be named.
    reports_group = dist.new_group(backend=BACKENDS["cpu"].collective, timeout=timedelta(seconds=PREFLIGHT_TIMEOUT_S))
    try:
        dist.monitored_barrier(group=reports_group, timeout=timedelta(seconds=PREFLIGHT_TIMEOUT_S), wait_all_ranks=True)
    except RuntimeError as error:
        raise RuntimeUserError(
            f"pre-flight: rank {here.rank} on {here.host} waited {PREFLIGHT_TIMEOUT_S} s for ranks that never "
            f"answered: {_first_line(error)}",
            "check that every node started (ftc logs), and that MASTER_ADDR/MASTER_PORT are reachable from it",
        ) from None
    reports: list[RankReport | None] = [None] * started
    dist.all_gather_object(reports, here, group=reports_group)
    total = torch.ones(1, device=device)
    try:
        dist.all_reduce(total)  # one collective on the device backend itself
    except Exception as error:  # noqa: BLE001  the collective libraries raise their own types
        raise RuntimeUserError(
            f"pre-flight: the {backend.collective} all-reduce failed on rank {here.rank} ({here.host}, {device}): "
            f"{_first_line(error)}",
            f"check the {backend.collective} settings in [launch.env] (e.g. NCCL_SOCKET_IFNAME) and the interconnect",
        ) from None
    summed = int(total.item())
    if summed != started:
        raise RuntimeUserError(
            f"pre-flight: the all-reduce summed to {summed}, not {started}, on rank {here.rank} ({here.host})",
            "a rank joined another run's rendezvous: give each run its own MASTER_PORT",
        )
    dist.destroy_process_group(reports_group)
    return [report for report in reports if report is not None]


def show_preflight(reports: list[RankReport]) -> None:
    """Rank 0 prints every rank's report: one line each, before training starts."""
    if reports and rank() == 0:
        hosts = len({report.host for report in reports})
        print(f"pre-flight: {len(reports)} ranks on {hosts} host(s) joined an all-reduce", flush=True)
        for report in reports:
            print(f"  {report.line()}", flush=True)


def _bind_device(backend: Backend) -> str:
    """This process's device, e.g. "cuda:3": its LOCAL_RANK-th visible device (or the CPU)."""
    if backend.device_module is None:
        # DeepSpeed (a ZeRO plan) picks its accelerator once, on first use: on a host that also has a GPU it
        # would pick CUDA for a run planned on CPU processes.
        os.environ["DS_ACCELERATOR"] = "cpu"
        return "cpu"
    # torch_devices imports the backend's plugin first: torch.npu and the hccl backend exist after torch_npu.
    torch_devices(backend).set_device(local_rank())
    return f"{backend.name}:{local_rank()}"


def _device_id(device: str) -> Any:
    # Binding the group to the device lets NCCL/HCCL connect eagerly; gloo on the CPU takes none.
    import torch

    return None if device == "cpu" else torch.device(device)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def use_fsdp_on_cpu(trainer: Any, plan: Any) -> None:
    """Let an fsdp plan shard on the CPU too: accelerate only turns FSDP on for accelerators.

    On CPU processes accelerate settles on plain multi-CPU data parallelism and would wrap the model in
    DDP, ignoring the FSDP plugin the trainer built from fsdp.json. Before the model is wrapped, the
    state is switched to FSDP with that plugin; torch's FSDP2 shards over gloo as it does over NCCL.
    """
    if plan.strategy.value != "fsdp" or plan.backend.value != "cpu" or world_size() == 1:
        return
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if state.distributed_type == DistributedType.MULTI_CPU:
        state.fsdp_plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
        state.distributed_type = DistributedType.FSDP
        # Every AcceleratorState() built after this copies PartialState's fields over its own, so the switch
        # is recorded in both, as accelerate does when it turns FSDP on itself. Recorded in one only, the run
        # is multi-CPU again by the time it saves and loads: saving would keep each rank's shards (DTensors),
        # and resuming would have rank 0 wait alone on the checkpoint's broadcast while the others skip it.
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        trainer.is_fsdp_enabled = True


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch before the model is built, so every rank (and a single process) starts
    from the same weights: LoRA's A matrices and new heads are drawn at random, and FSDP does not broadcast them."""
    from transformers import set_seed

    set_seed(seed)


def leave_process_group() -> None:
    """At the end of a run, every rank waits for the others (rank 0 may still be writing the results), then
    the group is torn down. Left to the interpreter's exit, gloo's worker threads are destroyed unjoined
    and a rank can abort ("terminate called without an active exception") after a run that succeeded."""
    import sys

    if "torch.distributed" not in sys.modules:  # one process that never opened a group
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
