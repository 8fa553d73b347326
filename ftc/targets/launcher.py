"""The launch line every target runs: the runtime as one process, or torchrun starting it on every device.

One function for all targets; what differs between them is only the rendezvous they hand in: the
local target knows it is one node, the Slurm target's per-node script exports NNODES, NODE_RANK
(one name for the node rank, end to end) and MASTER_ADDR/MASTER_PORT, and the line reads those.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftc.devices.backends import BACKENDS
from ftc.targets.base import Job
from ftc.targets.render import FromShell

Word = str | FromShell


@dataclass(frozen=True)
class Rendezvous:
    """How torchrun's agents on the nodes find each other, and which node this one is."""

    backend: str  # torchrun's rendezvous backend: c10d | static
    nodes: Word
    node_rank: Word
    endpoint: Word  # host:port of the store the agents meet at

    def timeout_option(self, seconds: int) -> str:
        # The two backends spell the same wait differently.
        key = "join_timeout" if self.backend == "c10d" else "timeout"
        return f"--rdzv-conf={key}={seconds}"


# One node: c10d on a free local port, as `torchrun --standalone` does.
ONE_NODE = Rendezvous("c10d", "1", "0", "127.0.0.1:0")
# Several nodes: the values come from the script around the line. The static backend takes NODE_RANK as
# the node's rank (c10d would ignore it and number nodes by arrival), and the node of rank 0 holds the
# store at MASTER_ADDR:MASTER_PORT.
FROM_NODE_ENVIRONMENT = Rendezvous(
    "static", FromShell("$NNODES"), FromShell("$NODE_RANK"), FromShell("$MASTER_ADDR:$MASTER_PORT")
)
NODE_VARIABLES = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def runtime_command(job: Job) -> list[str]:
    """The shared runtime, given the run folder: what every process of every target runs."""
    return [job.python, "-m", "ftc.runtime", str(job.run_dir)]


def launch_command(job: Job, rendezvous: Rendezvous) -> list[Word]:
    """The whole line: [launch.env] settings, then the runtime itself or torchrun around it."""
    plan, launch = job.plan, job.spec.launch
    settings = ["env", *(f"{name}={value}" for name, value in sorted(launch.env.items()))] if launch.env else []
    if plan.world_size.value == 1:
        return [*settings, *runtime_command(job)]
    return [
        *settings,
        job.python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        rendezvous.nodes,
        "--nproc-per-node",
        str(plan.hardware.devices_per_node),
        "--node-rank",
        rendezvous.node_rank,
        "--rdzv-backend",
        rendezvous.backend,
        "--rdzv-endpoint",
        rendezvous.endpoint,
        "--rdzv-id",
        "ftc",
        rendezvous.timeout_option(launch.rendezvous_timeout_s),
        "--max-restarts",
        "0",  # a failed rank fails the run: ftc's resume restarts it from a checkpoint, not torchrun
        "--module",
        "ftc.runtime",
        str(job.run_dir),
    ]


def rendezvous_for(job: Job) -> Rendezvous:
    """For a target that runs on this machine: one node, or the node variables the user exported on each."""
    return ONE_NODE if job.plan.hardware.nodes == 1 else FROM_NODE_ENVIRONMENT


def visible_devices(job: Job) -> tuple[str, str] | None:
    """(variable, default) that picks the plan's devices on this node, e.g. ("CUDA_VISIBLE_DEVICES", "0,1")."""
    backend = BACKENDS[job.plan.backend.value]
    if backend.visible_devices is None:
        return None
    return backend.visible_devices, ",".join(str(index) for index in range(job.plan.hardware.devices_per_node))
