"""What `ftc doctor` looks at, one probe per thing, each returning rows: what, what was found, a status.

The library versions come from package metadata (ftc.install.tested_versions). The machine probes import torch,
DeepSpeed and bitsandbytes only where they are installed, build nothing, and give each outside command a
short timeout: a doctor that hangs on a dead Slurm controller would be no help.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass

from ftc.devices.backends import BACKENDS
from ftc.install.tested_versions import MISSING, OK, OTHER_VERSION, Lookup, VersionCheck
from ftc.kernels import FLASH_ATTENTION, KERNELS
from ftc.quantizers import QUANTIZERS

BITSANDBYTES_ROWS = ("bitsandbytes",)  # the quantizers with a probe of their own
WARN = "warn"  # a row's status: OK, WARN or MISSING
NOT_INSTALLED = "not installed"
PROBE_TIMEOUT_S = 5
SHOWN_DIFFERENCES = 4  # the others row names this many packages that differ, then counts the rest


@dataclass(frozen=True)
class Row:
    what: str
    found: str
    status: str
    tested: str | None = None  # the tested version, for a pinned library
    hint: str | None = None  # how to fix it, shown when a planned run needs it
    needed_for: str | None = None  # why a planned run needs it; set by the doctor, not the probe


def library_row(found: VersionCheck) -> Row:
    status = {OK: OK, OTHER_VERSION: WARN, MISSING: MISSING}[found.status]
    return Row(found.name, found.installed or NOT_INSTALLED, status, tested=found.tested)


def unpinned_row(name: str, installed: Lookup) -> Row:
    """A library a run may need that the tests do not pin (a monitor's client)."""
    version = installed(name)
    return Row(name, version or NOT_INSTALLED, OK if version else MISSING, hint=f"pip install {name}")


def others_row(checks: tuple[VersionCheck, ...]) -> Row:
    """The rest of the tested set in one line; a package missing from it is only counted (the test tools)."""
    counts = Counter(found.status for found in checks)
    found = f"{counts[OK]} ok, {counts[OTHER_VERSION]} other version, {counts[MISSING]} not installed"
    differing = [found.describe() for found in checks if found.status == OTHER_VERSION]
    if differing:
        more = len(differing) - SHOWN_DIFFERENCES
        found += ": " + ", ".join(differing[:SHOWN_DIFFERENCES]) + (f" and {more} more" if more > 0 else "")
    return Row("other pinned packages", found, WARN if differing else OK)


@contextmanager
def quiet() -> Iterator[None]:
    """bitsandbytes and DeepSpeed announce themselves on import (a missing kernel, the accelerator they
    chose); the doctor reports what they found in its own row instead."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(before)


def first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def torch_rows(installed: Lookup) -> list[Row]:
    if installed("torch") is None:
        return [Row("torch build", NOT_INSTALLED, MISSING), Row("cuda devices", "unknown without torch", MISSING)]
    import torch

    if torch.version.cuda:
        build = f"CUDA {torch.version.cuda}"
    elif getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip}"
    else:
        build = "CPU"
    npu = installed("torch_npu")
    rows = [Row("torch build", f"{build} (torch {torch.__version__})" + (f", torch_npu {npu}" if npu else ""), OK)]
    if build == "CPU":
        hint = "install torch's CUDA wheel (pytorch.org), or plan for the CPU (--hardware cpu)"
        rows.append(Row("cuda devices", "none (a CPU build of torch)", MISSING, hint=hint))
    else:
        rows.append(cuda_devices(torch))
    if npu:
        rows.append(npu_devices(torch))
    return rows


def counted(names: list[str]) -> str:
    return ", ".join(f"{count} × {name}" for name, count in Counter(names).items())


def cuda_devices(torch) -> Row:
    try:
        names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    except Exception as error:  # a driver that does not load is a finding, not a crash
        return Row("cuda devices", f"CUDA does not start: {first_line(error)}", MISSING)
    if not names:
        hint = f"check nvidia-smi and {BACKENDS['cuda'].visible_devices}"
        return Row("cuda devices", "none visible", MISSING, hint=hint)
    return Row("cuda devices", counted(names), OK)


def npu_devices(torch) -> Row:
    try:
        with quiet():
            import torch_npu  # noqa: F401  registers torch.npu

            count = torch.npu.device_count()
    except Exception as error:
        return Row(
            "npu devices", f"torch_npu does not load: {first_line(error)}", MISSING, hint="check the CANN toolkit"
        )
    if not count:
        hint = f"check npu-smi and {BACKENDS['npu'].visible_devices}"
        return Row("npu devices", "none visible", MISSING, hint=hint)
    return Row("npu devices", f"{count} × NPU", OK)


# ZeRO-Offload's optimizer step and the CPU accelerator's collective: the ops a CPU-side ZeRO run compiles.
DEEPSPEED_CPU_OPS = ("CPUAdamBuilder", "ShareMemCommBuilder")
BUILD_TOOLS_HINT = "install a C++ compiler (e.g. apt-get install g++) and ninja (pip install -c constraints.txt ninja)"


def deepspeed_rows(installed: Lookup) -> list[Row]:
    """Like DeepSpeed's ds_report, cheaply: for each op, prebuilt or buildable here, and the tools to build it."""
    if installed("deepspeed") is None:
        return [Row("deepspeed ops", "deepspeed not installed", MISSING)]
    try:
        with quiet():
            from deepspeed.accelerator import get_accelerator
            from deepspeed.git_version_info import installed_ops

            accelerator = get_accelerator()
            builders = [accelerator.create_op_builder(name) for name in DEEPSPEED_CPU_OPS]
            ops = [
                (builder.NAME, bool(installed_ops.get(builder.NAME)), builder.is_compatible(verbose=False))
                for builder in builders
                if builder is not None
            ]
    except Exception as error:
        return [Row("deepspeed ops", f"DeepSpeed does not load: {first_line(error)}", WARN)]
    compiler = os.environ.get("CXX", "c++")  # what torch's extension builder runs
    tools = {compiler: shutil.which(compiler), "ninja": shutil.which("ninja")}
    can_build = all(tools.values())
    by_state: dict[str, list[str]] = {}
    for name, prebuilt, compatible in ops:
        state = "prebuilt" if prebuilt else "built on first use" if compatible else "cannot build here"
        by_state.setdefault(state, []).append(name)
    ready = "cannot build here" not in by_state and (can_build or "built on first use" not in by_state)
    described = "; ".join(f"{state}: {', '.join(names)}" for state, names in by_state.items())
    on_path = [tool for tool, path in tools.items() if path]
    off_path = [tool for tool in tools if tool not in on_path]
    path_text = "; ".join(
        f"{' and '.join(group)} {where}" for group, where in ((on_path, "on PATH"), (off_path, "not on PATH")) if group
    )
    found = f"{accelerator.device_name()} accelerator; {described}; {path_text}"
    return [Row("deepspeed ops", found, OK if ready else WARN, hint=None if ready else BUILD_TOOLS_HINT)]


def bitsandbytes_rows(installed: Lookup) -> list[Row]:
    if installed("bitsandbytes") is None:
        return [Row("bitsandbytes backend", "bitsandbytes not installed", MISSING)]
    try:
        with quiet():
            from bitsandbytes import cextension
    except Exception as error:
        return [Row("bitsandbytes backend", f"does not load: {first_line(error)}", MISSING)]
    backend = getattr(cextension, "BNB_BACKEND", "unknown")
    mock = getattr(cextension, "ErrorHandlerMockBNBNativeLibrary", None)
    loaded = not (mock is not None and isinstance(getattr(cextension, "lib", None), mock))
    found = f"{backend}, native library {'loaded' if loaded else 'missing'}"
    hint = None if loaded else "reinstall bitsandbytes: its wheel has no native library for this machine"
    return [Row("bitsandbytes backend", found, OK if loaded else MISSING, hint=hint)]


def quantization_rows(installed: Lookup) -> list[Row]:
    """Whether each quantization backend but bitsandbytes (its own row above) can run here: its packages, and
    a CUDA device where it needs one (asked of torch only then, and only where torch is installed)."""
    rows = []
    for quantizer in QUANTIZERS.values():
        if quantizer.name in BITSANDBYTES_ROWS:
            continue
        absent = [package for package in quantizer.packages if installed(package) is None]
        found = [f"{package} {installed(package)}" for package in quantizer.packages if package not in absent]
        problems = [f"{package} not installed" for package in absent]
        if "cpu" not in quantizer.devices and not absent and not _cuda_seen(installed):
            problems.append("no CUDA device")
        where = ", ".join(quantizer.devices)
        text = "; ".join(found + problems) + f" (runs on {where})"
        hint = (
            None
            if not problems
            else f"pip install 'ftc[{quantizer.extra}]'"
            + ("" if "cpu" in quantizer.devices else " on a machine with a CUDA GPU")
        )
        rows.append(Row(quantization_row(quantizer.name), text, MISSING if problems else OK, hint=hint))
    return rows


def quantization_row(name: str) -> str:
    return f"{name} quantization"


def _cuda_seen(installed: Lookup) -> bool:
    if installed("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def kernel_rows(installed: Lookup) -> list[Row]:
    """The speed-kernel packages (ftc.kernels): installed, with what they import besides torch. Whether there is a
    device for them to run on is the backend's row ("cuda devices"), which a plan that needs them needs too."""
    rows = []
    for kernel in (*KERNELS.values(), FLASH_ATTENTION):
        version = installed(kernel.library)
        if version is None:
            rows.append(Row(kernel.library, NOT_INSTALLED, MISSING, hint=kernel.install_hint))
            continue
        absent = [name for name in kernel.requires if installed(name) is None]
        beside = [f"{name} {installed(name)}" for name in kernel.requires if name not in absent]
        found = ", ".join([version, *beside, *(f"{name} not installed" for name in absent)])
        rows.append(Row(kernel.library, found, MISSING if absent else OK, hint=kernel.install_hint))
    return rows


# transformers' attention and mask registries (AttentionInterface, AttentionMaskInterface), and the models' own
# statement of calling through them, all in the 5 series ftc pins: what train.shift_attention registers with.
ATTENTION_INTERFACE_SINCE = 5


def attention_interface_rows(installed: Lookup) -> list[Row]:
    version = installed("transformers")
    has_it = version is not None and int(version.split(".")[0]) >= ATTENTION_INTERFACE_SINCE
    found = f"transformers {version}" if version else "transformers not installed"
    hint = f"install the tested transformers ({ATTENTION_INTERFACE_SINCE}.x): ftc doctor's pip command does"
    return [Row("attention interface", found, OK if has_it else MISSING, hint=None if has_it else hint)]


def answer(command: list[str]) -> tuple[bool, str]:
    """Whether a command answers within the timeout, and its output (or why not) in one line."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {PROBE_TIMEOUT_S} s"
    except OSError as error:
        return False, first_line(error)
    if done.returncode != 0:
        return False, first_line(done.stderr or done.stdout or f"exit status {done.returncode}")
    return True, " ".join(done.stdout.split())


def slurm_rows(installed: Lookup) -> list[Row]:
    absent = [name for name in ("sbatch", "squeue") if shutil.which(name) is None]
    client = Row(
        "slurm client",
        f"not on PATH: {', '.join(absent)}" if absent else "sbatch, squeue on PATH",
        MISSING if absent else OK,
        hint="run ftc on a Slurm login node",
    )
    if shutil.which("sinfo") is None:
        return [client, Row("slurm controller", "sinfo not on PATH", MISSING, hint=client.hint)]
    answered, said = answer(["sinfo", "--noheader", "--format=%P"])
    found = f"sinfo answers (partitions: {said.replace(' ', ', ') or 'none'})" if answered else f"sinfo: {said}"
    return [client, Row("slurm controller", found, OK if answered else WARN, hint="check slurmctld (scontrol ping)")]


def docker_rows(installed: Lookup) -> list[Row]:
    if shutil.which("docker") is None:
        hint = "install docker (the client and its daemon)"
        return [
            Row("docker client", "docker not on PATH", MISSING, hint=hint),
            Row("docker daemon", "no client to ask", MISSING, hint=hint),
        ]
    answered, said = answer(["docker", "info", "--format", "{{.ServerVersion}}"])
    return [
        Row("docker client", "docker on PATH", OK),
        Row(
            "docker daemon",
            f"answers (server {said})" if answered else f"not answering: {said}",
            OK if answered else MISSING,
            hint="start the docker daemon, or give this user access to it (the docker group)",
        ),
    ]


def image_processor_rows(installed: Lookup) -> list[Row]:
    """Which image processors transformers will use for an image+text model. Pillow's always work; torchvision
    is not needed, but where it is installed transformers picks its processors instead, and a torchvision
    built for another torch (pip may pair a CUDA one with the CPU torch) then fails at the first image."""
    pillow = installed("pillow")
    if pillow is None:
        return [Row("image processors", "Pillow not installed", MISSING, hint="pip install 'ftc[vision]'")]
    vision = installed("torchvision")
    if vision is None:
        found = f"Pillow {pillow}; torchvision not installed (not needed): transformers uses its Pillow processors"
        return [Row("image processors", found, OK)]
    try:
        with quiet():
            import torchvision  # noqa: F401
    except Exception as error:  # a mismatched build fails in its C++ operators, with any exception type
        return [
            Row(
                "image processors",
                f"torchvision {vision} does not import ({first_line(error)}): transformers would pick its "
                "torchvision processors and fail",
                MISSING,
                hint="pip uninstall torchvision (ftc does not need it), or install the build made for this torch",
            )
        ]
    return [Row("image processors", f"Pillow {pillow}; torchvision {vision} imports: transformers uses it", OK)]


Probe = Callable[[Lookup], list[Row]]
MACHINE_PROBES: tuple[Probe, ...] = (
    torch_rows,
    deepspeed_rows,
    bitsandbytes_rows,
    quantization_rows,
    kernel_rows,
    attention_interface_rows,
    image_processor_rows,
    slurm_rows,
    docker_rows,
)
