"""The model's shapes for the planner: a local folder's config.json, else ftc's registry of hub ids; and the
shape of the LoRA adapter a run starts from (model.adapter), from its adapter_config.json.

The I/O edge of planning: reading these files happens here, the compiler only sees the parsed dicts. A local
folder's weight files are checked here too, so that a damaged download is named before anything plans on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftc.compiler.adapters import ADAPTER_CONFIG, AdapterShape, adapter_from_config
from ftc.compiler.architectures import architecture_from_config, find_architecture
from ftc.compiler.model_families import FAMILIES
from ftc.compiler.model_shapes import Architecture
from ftc.errors import FtcError
from ftc.models.weight_files import check_weight_files
from ftc.spec.models import Spec


def architecture_for(spec: Spec, base_dir: Path) -> Architecture | None:
    if spec.model.architecture is not None:
        return architecture_from_config(spec.model.architecture, source="model.architecture")  # the spec's word first
    folder = _local(spec.model.name_or_path, base_dir)
    config_file = folder / "config.json"
    if config_file.is_file():
        check_weight_files(folder, "model.name_or_path")
        config = _read_json(config_file, "model.name_or_path needs a valid config.json")
        if not isinstance(config, dict):
            raise FtcError(f"{config_file}: not a JSON object of model settings", "is it the model's own config.json?")
        return architecture_from_config(config, source=str(config_file))
    # A local folder's own config wins over a registry entry that happens to share its name.
    return None if folder.is_dir() else find_architecture(spec.model.name_or_path)


def has_vision_tower(spec: Spec) -> bool:
    """The spec's model (its paths resolved) is an image+text one: its model_type's family names vision parts."""
    return model_type_and_vision(spec)[1] is True


def model_type_and_vision(spec: Spec) -> tuple[str, bool | None]:
    """The spec's model's model_type and whether its family names vision parts (paths resolved); read off
    model.architecture, a local folder's config.json, else ftc's registry of hub ids. ("", None) when unknown: a
    hub id the registry lacks, or a config.json the plan will report as unreadable."""
    config = spec.model.architecture
    config_file = Path(spec.model.name_or_path).expanduser() / "config.json"
    if config is None and config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "", None
    if isinstance(config, dict):
        model_type = str(config.get("model_type", "")).lower()
        family = FAMILIES.get(model_type)
        return model_type, None if family is None else family.vision is not None
    known = find_architecture(spec.model.name_or_path)
    return ("", None) if known is None else (known.model_type, known.vision is not None)


def images_refused(spec: Spec) -> tuple[str, str] | None:
    """Why the spec's model cannot take records with images, and the hint; None when it can, or is unknown."""
    model_type, vision = model_type_and_vision(spec)
    if vision is not False:
        return None
    # Its tokenizer would read each placeholder as the text "<image>", and no pixels would reach it.
    able = ", ".join(sorted(name for name, family in FAMILIES.items() if family.vision is not None))
    return (
        f"the model (model_type {model_type!r}) reads text only: it has no vision tower to see them",
        f"train an image+text model (model_type {able}) on them, or leave the images out of the records",
    )


def adapter_for(spec: Spec, base_dir: Path) -> AdapterShape | None:
    """model.adapter's rank, alpha and targets where it is a local folder; None without one (or on the hub)."""
    if spec.model.adapter is None:
        return None
    folder = _local(spec.model.adapter, base_dir)
    config_file = folder / ADAPTER_CONFIG
    if not config_file.is_file():
        return None  # a hub id, read by peft at run time; a missing folder is refused at launch by its key
    check_weight_files(folder, "model.adapter")
    return adapter_from_config(_read_json(config_file, f"model.adapter needs a valid {ADAPTER_CONFIG}"), str(folder))


def _local(written: str, base_dir: Path) -> Path:
    path = Path(written).expanduser()
    return path if path.is_absolute() else base_dir / path


def _read_json(path: Path, hint: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FtcError(f"{path}: cannot read it ({error})", hint) from None
