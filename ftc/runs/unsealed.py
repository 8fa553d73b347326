"""Whether a checkpoint without a seal (written before ftc sealed its checkpoints) is whole, by its files.

Such a checkpoint is accepted, rather than refused for lacking a seal, when it passes every check here:
a run started with an older ftc then resumes as it would have, while a folder cut short is still found.
What is checked is what the trainer (or ppo's loop) writes and can be read back cheaply:
  - trainer_state.json reads, with the folder's step;
  - model weights are there (safetensors, .bin, an FSDP or DeepSpeed folder), and every shard an index names;
  - the optimizer and RNG state the trainer resumes from, or ppo's own state file;
  - every safetensors file's header parses and its length covers the tensors it declares;
  - every torch file (.pt, .pth, .bin) is a whole zip archive (its directory at the end reads).
A file cut short fails the last two; a file never written fails the others.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from ftc.runs.seal import files_in

TRAINER_STATE = "trainer_state.json"
PPO_STATE = "ppo_state.pt"  # ftc.runtime.ppo.learner's STATE_FILE
_WEIGHTS = (
    "adapter_model.safetensors",
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.bin",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def unsealed_problem(folder: Path, step: int) -> str | None:
    """Why the unsealed `folder` is not a whole checkpoint `step` (None: it is)."""
    try:
        names = files_in(folder)
        return (
            _state_problem(folder, step)
            or _missing_problem(folder, names)
            or next(filter(None, (_file_problem(folder / name) for name in names)), None)
        )
    except (OSError, ValueError) as error:  # removed while looked at, or an index that is not JSON
        return f"unreadable ({error})"


def _state_problem(folder: Path, step: int) -> str | None:
    if not (folder / TRAINER_STATE).is_file():
        return f"{TRAINER_STATE} missing"
    try:
        recorded = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError):
        return f"{TRAINER_STATE} is unreadable"
    return None if recorded == step else f"{TRAINER_STATE} is for step {recorded}"


def _missing_problem(folder: Path, names: dict[str, int]) -> str | None:
    top = {name.split("/")[0] for name in names}
    deepspeed = "latest" in top  # DeepSpeed keeps weights and optimizer in global_stepN/, named by `latest`
    fsdp = any(name.startswith("pytorch_model_fsdp") for name in top)
    if not (deepspeed or fsdp or any(name in top for name in _WEIGHTS)):
        return "no model weights"
    for index in (name for name in top if name.endswith(".index.json")):
        shards = set(json.loads((folder / index).read_text(encoding="utf-8")).get("weight_map", {}).values())
        absent = sorted(shards - top)
        if absent:
            return f"{absent[0]}, named in {index}, is missing"
    if PPO_STATE in top:
        return None
    optimizer = deepspeed or any(name.startswith("optimizer") for name in top)
    if not optimizer:
        return "no optimizer state"
    if not any(name.startswith("rng_state") for name in top):
        return "no RNG state"
    return None


def _file_problem(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix in _TORCH_SUFFIXES:
        try:
            with zipfile.ZipFile(path):  # torch.save writes a zip whose directory comes last
                return None
        except (zipfile.BadZipFile, OSError):
            return f"{path.name} is cut short (not a whole torch file)"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file: 8 bytes of header length, the JSON header, then the tensors' bytes."""
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            return f"{path.name} is cut short (no header)"
        (length,) = struct.unpack("<Q", prefix)
        if 8 + length > size:
            return f"{path.name} is cut short (in its header)"
        try:
            header = json.loads(file.read(length))
        except ValueError:
            return f"{path.name} has an unreadable header"
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        return f"{path.name} is cut short ({size} of {8 + length + max(ends)} bytes)"
    return None
