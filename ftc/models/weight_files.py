"""A cheap look at a local model folder's weight files before anything loads them, without torch.

A download or copy cut short leaves a weight file that loads only to fail deep inside safetensors
(`SafetensorError: invalid header length`) after minutes of startup, or a shard index naming shards
that never arrived. Reading each file's header, and comparing the size it promises with the size on
disk, finds both in milliseconds whatever the model's size.

A .safetensors file is an 8-byte little-endian header length N, N bytes of JSON mapping each tensor
name to {dtype, shape, data_offsets} (plus an optional "__metadata__"), then the tensor data, whose
length is the largest data_offsets end.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from ftc.errors import FtcError

# The inputs `ftc.spec.resolve.input_paths` names that are model folders (the rest are datasets).
MODEL_KEYS = frozenset({"model.name_or_path", "model.adapter", "ppo.reward_model"})
# safetensors refuses a header above 100 MB; a length beyond it is garbage, not a big model.
_MAX_HEADER = 100_000_000
# Files that torch.save wrote as a zip archive (every torch since 1.6); older pickles have no cheap check.
_TORCH_SUFFIXES = (".bin", ".pt", ".pth")


def check_weight_files(folder: Path, key: str) -> None:
    """Refuse a damaged weight file or shard index in `folder` (the input at spec key `key`)."""
    for file in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(file)
        if problem:
            raise FtcError(f"{key}: {file} is not a valid safetensors file: {problem}", _redownload(folder))
    for file in sorted(folder.iterdir()):
        if file.suffix in _TORCH_SUFFIXES and file.is_file() and _is_zip_archive(file) and not _zip_intact(file):
            raise FtcError(
                f"{key}: {file} is cut short: its zip archive has no intact directory at the end", _redownload(folder)
            )
    for index in sorted([*folder.glob("*.safetensors.index.json"), *folder.glob("*.bin.index.json")]):
        _check_index(index, key)


def safetensors_problem(file: Path) -> str | None:
    """What is wrong with a .safetensors file's header, or None when its promises match the file."""
    if not file.is_file():
        return "it cannot be read (a broken link?)"
    size = file.stat().st_size
    if size < 8:
        return f"it is {size} bytes, too short even for the 8-byte header length"
    with file.open("rb") as stream:
        length = int.from_bytes(stream.read(8), "little")
        if length == 0 or length > _MAX_HEADER:
            return f"its header length is {length} bytes, which no safetensors writer produces"
        if length > size - 8:
            return f"its header length is {length} bytes but only {size - 8} follow: the file was cut short"
        raw = stream.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return f"its {length}-byte header is not JSON ({error})"
    if not isinstance(header, dict):
        return "its header is not a JSON object of tensors"
    data_end = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        offsets = _offsets(tensor)
        if offsets is None:
            return f"tensor {name!r} has no valid dtype, shape and data_offsets [begin, end] in the header"
        data_end = max(data_end, offsets[1])
    data_size = size - 8 - length
    if data_end > data_size:
        return f"its tensors need {data_end} bytes of data but {data_size} are there: the file was cut short"
    if data_end < data_size:
        return f"{data_size - data_end} bytes follow its last tensor, which safetensors refuses to load"
    return None


def _offsets(tensor: Any) -> tuple[int, int] | None:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("dtype"), str):
        return None
    shape, offsets = tensor.get("shape"), tensor.get("data_offsets")
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        return None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(offset) for offset in offsets):
        return None
    begin, end = offsets
    return (begin, end) if begin <= end else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_zip_archive(file: Path) -> bool:
    with file.open("rb") as stream:
        return stream.read(4) == b"PK\x03\x04"


def _zip_intact(file: Path) -> bool:
    # Opening reads only the central directory, which a zip keeps at its very end: the first thing truncation loses.
    try:
        with zipfile.ZipFile(file):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def _check_index(index: Path, key: str) -> None:
    """A shard index (model.safetensors.index.json) must parse and name only shards the folder holds."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, ValueError, AttributeError) as error:
        raise FtcError(f"{key}: {index} is not a valid shard index ({error})", _redownload(index.parent)) from None
    if not isinstance(weight_map, dict) or not all(isinstance(shard, str) for shard in weight_map.values()):
        raise FtcError(f"{key}: {index} has no weight_map of tensor names to shard files", _redownload(index.parent))
    missing = sorted({shard for shard in weight_map.values() if not (index.parent / shard).is_file()})
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FtcError(
            f"{key}: {index} names {len(missing)} shard(s) the folder does not hold: {shown}",
            _redownload(index.parent),
        )


def _redownload(folder: Path) -> str:
    return (
        f"the file is damaged or incomplete, as an interrupted download or copy leaves it; download the model "
        f"again (e.g. `hf download REPO --local-dir {folder} --force-download`) or export it again"
    )
