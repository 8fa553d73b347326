"""Settings both tools spell the same way: a DeepSpeed JSON file, the batch arithmetic, named datasets."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ftc.importers.core import Import, UnmappableValue, whole
from ftc.spec.dataset_registry import RegistryEntryError, registry_dataset
from ftc.stages import STAGES

_ZERO_STRATEGIES = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}
# The file names both tools ship, for a config whose JSON is not beside it.
_SHIPPED_NAME = re.compile(r"(?:ds_)?z(?:ero)?([0-3])(_offload)?(?:_config)?(?:_bf16|_fp16|_all)?\.json$")


def deepspeed(job: Import, key: str, value: Any) -> None:
    """A DeepSpeed config (a path to its JSON, or the JSON inline) read into train.strategy and train.offload."""
    if isinstance(value, dict):
        config, where = value, "inline"
    elif isinstance(value, str) and value:
        path = Path(value).expanduser()
        candidates = [path] if path.is_absolute() else [job.source.file.parent / path, Path.cwd() / path]
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            shipped = _SHIPPED_NAME.search(Path(value).name)
            if shipped is None:
                raise UnmappableValue(
                    f"{value} is not found (beside the config or here) and is not a file name the tools ship",
                    "put the DeepSpeed JSON beside the config",
                )
            stage, offload = int(shipped.group(1)), bool(shipped.group(2))
            job.set("train.strategy", _ZERO_STRATEGIES[stage])
            job.set(
                "train.offload", "optimizer+params" if offload and stage == 3 else "optimizer" if offload else "none"
            )
            job.notes.append(f"{key}: {value} not found; read its ZeRO stage and offload from the file name")
            return
        try:
            config = json.loads(found.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnmappableValue(f"{found} is not a readable JSON file: {error}", "fix the DeepSpeed config") from None
        where = str(found)
    else:
        raise UnmappableValue(f"expected the path of a DeepSpeed JSON file, found {value!r}", "name the file")
    zero = config.get("zero_optimization", {}) if isinstance(config, dict) else None
    if not isinstance(zero, dict):
        raise UnmappableValue("its zero_optimization is not an object", "fix the DeepSpeed config")
    stage = zero.get("stage", 0)
    if stage not in _ZERO_STRATEGIES:
        raise UnmappableValue(f"zero_optimization.stage {stage!r} is not 0 to 3", "fix the DeepSpeed config")
    offloads = [
        part
        for part in ("offload_optimizer", "offload_param")
        if isinstance(zero.get(part), dict) and zero[part].get("device", "none") not in ("none", None)
    ]
    if "offload_param" in offloads and stage != 3:
        raise UnmappableValue("offload_param moves sharded parameters, which only ZeRO-3 has", "use stage 3")
    offload = "optimizer+params" if "offload_param" in offloads else "optimizer" if offloads else "none"
    job.set("train.strategy", _ZERO_STRATEGIES[stage])
    job.set("train.offload", offload)
    job.notes.append(
        f"{key}: ZeRO stage {stage} ({where}) → train.strategy = {_ZERO_STRATEGIES[stage]!r}, "
        f"train.offload = {offload!r}; ftc writes its own DeepSpeed config from the plan"
    )


def batch(job: Import, micro_key: str, accumulation_key: str) -> None:
    """The tools' per-device batch × accumulation × processes is ftc's global batch; ftc's plan picks the
    accumulation again for the hardware it plans on, so only the global size and the micro-batch are kept."""
    try:
        micro = whole(job.get(micro_key, 1))
        accumulation = whole(job.get(accumulation_key, 1))
    except UnmappableValue as error:
        bad = micro_key if not isinstance(job.get(micro_key, 1), int) else accumulation_key
        raise job.fail(bad, error.message, error.hint) from None
    if micro < 1 or accumulation < 1:
        bad = micro_key if micro < 1 else accumulation_key
        raise job.fail(bad, "must be at least 1", "write a whole number above 0")
    world = job.options.get("world_size", 1)
    job.set("train.global_batch_size", micro * accumulation * world)
    stage = STAGES[job.lookup("train.stage", "sft")]
    if micro >= stage.least_micro_batch:
        job.set("train.micro_batch_size", micro)
    else:
        job.notes.append(
            f"{micro_key} = {micro} is left to the plan: train.stage = {stage.name!r} {stage.least_micro_batch_why}"
        )
    job.notes.append(
        f"train.global_batch_size = {micro} ({micro_key}) × {accumulation} ({accumulation_key}) × {world} "
        f"process{'es' if world != 1 else ''} (--world-size {world}); the plan picks the accumulation for the "
        "hardware it plans on"
    )


def named_datasets(job: Import, key: str, value: Any, info_path: Path, list_key: str, max_samples: Any) -> None:
    """LF's `dataset: a,b` looked up in its dataset_info.json, as [[data.datasets]] tables."""
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise job.fail(
            key, f"the names are described in {info_path}, which does not exist", "pass --dataset-info FILE"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise job.fail(key, f"{info_path} is not a readable JSON file: {error}", "fix it") from None
    if not isinstance(info, dict):
        raise job.fail(key, f"{info_path} holds no object of named datasets", "pass another --dataset-info")
    stage = job.lookup("train.stage", "sft")
    output_dir = job.options["output"].parent.resolve()
    tables = []
    for name in value:
        try:
            named = registry_dataset(info, name, STAGES[stage].data)
        except RegistryEntryError as error:
            blamed = f"{name}.{error.key}" if error.key else name
            raise job.fail(key, f"{blamed} in {info_path}: {error.message}", error.hint or "fix the entry") from None
        table = dict(named.table)
        if named.local:  # the written spec's paths are relative to the spec's folder
            table["path"] = os.path.relpath(info_path.resolve().parent / table["path"], output_dir)
        if max_samples is not None:
            table["max_samples"] = max_samples
        tables.append(table)
    job.set(f"data.{list_key}", tables)
