"""The device backends ftc plans for and runs on: one record each for cuda, npu and cpu.

A record holds all that the layers ask of a backend: the variable that picks a node's devices, the
collective library, the docker flags that hand the devices to a container, how Slurm counts them,
where the allocator's peaks are read, and how `--hardware auto` finds them. A backend's name is the
plan's `backend` and torch's device type ("cuda:0"); a hardware record names one.

Torch-free, so that every layer may read it: torch's device module and its functions are named as
text, and ftc.devices.torch_devices imports them where a process on the device asks. Adding a backend
is adding its record here, and, where torch can say more precisely why its devices are not usable, a
check in ftc.runtime.distributed.backend_check.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detection:
    """How `--hardware auto` finds the devices, cheaply where they are absent (torch is not imported then).

    A driver's listing tool is tried first, for every backend; then, backend by backend, a sign that the
    driver or plugin is here has torch asked which devices it sees.
    """

    listing: tuple[str, ...] = ()  # a command printing one "name, total MiB" line per device (nvidia-smi's CSV)
    installed: str | None = None  # a package whose presence says the devices are here
    driver_files: tuple[str, ...] = ()  # files the driver creates; any one of them says the devices are here


@dataclass(frozen=True)
class DockerDevices:
    """What `docker run` needs to see the node's devices inside the container."""

    flags: tuple[str, ...] = ()  # passed as they are
    per_device: tuple[str, ...] = ()  # device files, one per planned device: "{index}" counts from 0
    shared: tuple[str, ...] = ()  # device files every container of this backend needs
    host_paths: tuple[str, ...] = ()  # the host's driver and tools, mounted read-only at the same path

    def run_flags(self, devices: int) -> list[str]:
        flags = list(self.flags)
        flags += [f"--device={path.format(index=index)}" for index in range(devices) for path in self.per_device]
        flags += [f"--device={path}" for path in self.shared]
        return flags + [f"--volume={path}:{path}:ro" for path in self.host_paths]


@dataclass(frozen=True)
class AllocatorPeaks:
    """The caching allocator's peak counters, functions of torch's device module (in bytes)."""

    allocated: str = "max_memory_allocated"  # live tensors
    reserved: str = "max_memory_reserved"  # what the allocator took from the driver


@dataclass(frozen=True)
class Backend:
    name: str  # the plan's backend and torch's device type: cpu | cuda | npu
    title: str  # its device in messages, e.g. "Ascend NPU"
    devices: str  # its devices as a hint names them, e.g. "NPUs"
    collective: str  # torch.distributed's backend over its devices
    visible_devices: str | None = None  # the variable that picks which devices a node's processes see
    device_module: str | None = None  # torch's module for the devices (set_device, device_count, the peaks)
    plugin: str | None = None  # imported first: it registers the device and its collective with torch
    peaks: AllocatorPeaks | None = None  # None: the host is the device, and the process's peak RSS is measured
    detection: Detection | None = None  # None: what is left when no other backend is found
    docker: DockerDevices = field(default_factory=DockerDevices)
    slurm_gpus: bool = False  # Slurm schedules its devices as GPUs (--gpus-per-node)
    bitsandbytes: bool = True  # bitsandbytes, which QLoRA's 4- and 8-bit layers need, runs on it
    doctor_row: str | None = None  # the `ftc doctor` row that counts its devices


# In the order `--hardware auto` asks torch about them (after every listing tool was tried).
BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(
            "npu",
            "Ascend NPU",
            "NPUs",
            collective="hccl",
            visible_devices="ASCEND_RT_VISIBLE_DEVICES",
            device_module="torch.npu",
            plugin="torch_npu",
            peaks=AllocatorPeaks(),
            detection=Detection(installed="torch_npu"),
            # Ascend NPUs are not a --gpus device: their device files and host driver are passed in by hand.
            docker=DockerDevices(
                per_device=("/dev/davinci{index}",),
                shared=("/dev/davinci_manager", "/dev/devmgmt_manager", "/dev/hisi_hdc"),
                host_paths=("/usr/local/Ascend/driver", "/usr/local/dcmi", "/usr/local/bin/npu-smi"),
            ),
            bitsandbytes=False,
            doctor_row="npu devices",
        ),
        Backend(
            "cuda",
            "CUDA",
            "GPUs",
            collective="nccl",
            visible_devices="CUDA_VISIBLE_DEVICES",
            device_module="torch.cuda",
            peaks=AllocatorPeaks(),
            detection=Detection(
                listing=("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"),
                driver_files=("/dev/nvidia0", "/proc/driver/nvidia"),
            ),
            # Every GPU in the container, numbered as on the host; CUDA_VISIBLE_DEVICES, passed by name where the
            # caller exported it, picks among them as it does for the local target.
            docker=DockerDevices(flags=("--gpus", "all", "--env", "CUDA_VISIBLE_DEVICES")),
            slurm_gpus=True,
            doctor_row="cuda devices",
        ),
        # The host itself: every process sees all of it, and gloo carries the collectives.
        Backend("cpu", "CPU", "CPUs", collective="gloo"),
    )
}
