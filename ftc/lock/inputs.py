"""What a lock records from outside the spec: content hashes of local inputs and installed versions.

The I/O edge of locking. Versions come from package metadata, so locking imports no torch.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ftc import __version__
from ftc.quantizers import QUANTIZERS

# The libraries whose version changes what a run computes; absent ones are recorded as absent.
TRAINING_LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "safetensors",
    # an image+text model's images: Pillow decodes and resizes them; torchvision, where installed, makes
    # transformers pick its other image processors
    "pillow",
    "torchvision",
    "deepspeed",
    "torch_npu",
    # train.optimizer's own libraries (ftc.optimizers)
    "galore-torch",
    "apollo-torch",
    "badam",
    "adam-mini",
    # every quantization backend's packages, bitsandbytes' among them (the plan names the one it uses)
    *dict.fromkeys(package for quantizer in QUANTIZERS.values() for package in quantizer.packages),
    # train.kernels' and model.attention's kernel packages (ftc.kernels)
    "liger-kernel",
    "triton",
    "flash-attn",
)
NOT_INSTALLED = "not installed"
_CHUNK = 1 << 20
_SHOW_PROGRESS_FROM = 512 << 20  # bytes: below this, hashing is over before a bar would help


def versions() -> dict[str, str]:
    found = {"python": ".".join(str(part) for part in sys.version_info[:3]), "ftc": __version__}
    for name in TRAINING_LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = NOT_INSTALLED
    return found


@dataclass(frozen=True)
class InputFiles:
    """A local model or dataset: its files (relative to `root`, sorted) and their sha256."""

    root: Path
    files: dict[str, str]


def files_of(path: Path) -> list[Path]:
    """A file is itself; a folder is every file under it, hidden ones (.git, caches) left out."""
    if path.is_file():
        return [path]
    return sorted(
        file
        for file in path.rglob("*")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    )


def hash_inputs(paths: Iterable[Path]) -> dict[Path, InputFiles]:
    """sha256 of every file of every input, with one progress bar when there is much to read."""
    listed = {path: files_of(path) for path in paths}
    total = sum(file.stat().st_size for files in listed.values() for file in files)
    progress = _progress(total) if total >= _SHOW_PROGRESS_FROM else None
    hashed = {}
    for path, files in listed.items():
        root = path if path.is_dir() else path.parent
        hashed[path] = InputFiles(root, {file.relative_to(root).as_posix(): _sha256(file, progress) for file in files})
    if progress is not None:
        progress.close()
    return hashed


def hash_files(files: Iterable[Path]) -> dict[Path, str]:
    """sha256 of each file, read in chunks, with a progress bar when there is much to read (many images)."""
    files = list(dict.fromkeys(files))
    total = sum(file.stat().st_size for file in files)
    progress = _progress(total) if total >= _SHOW_PROGRESS_FROM else None
    hashed = {file: _sha256(file, progress) for file in files}
    if progress is not None:
        progress.close()
    return hashed


def _sha256(file: Path, progress) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress.update(len(chunk))
    return digest.hexdigest()


class _progress:
    """A byte-counting bar on stderr, for inputs large enough that hashing takes a while."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress(
            "hashing inputs", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=Console(stderr=True)
        )
        self.task = self.bar.add_task("hash", total=total)
        self.bar.start()

    def update(self, size: int) -> None:
        self.bar.advance(self.task, size)

    def close(self) -> None:
        self.bar.stop()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
