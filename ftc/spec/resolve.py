"""Make a spec's relative paths absolute, so a run folder means the same thing wherever it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ftc.spec.models import Spec

# A name with one of these endings is a file, never a hub id (which looks like `owner/name`).
_DATA_FILE_SUFFIXES = frozenset({".json", ".jsonl", ".csv", ".parquet", ".arrow", ".txt"})


def names_a_local_path(written: str) -> bool:
    """Spelled so that it can only mean the file system, whether or not it exists."""
    return written.startswith((".", "/", "~")) or Path(written).suffix.lower() in _DATA_FILE_SUFFIXES


def resolve_paths(spec: Spec, base_dir: Path, is_local: Callable[[Path], bool]) -> Spec:
    """Anchor local paths at `base_dir` (the spec's folder); leave hub ids as written.

    `is_local` tells whether a path names something on disk — the caller's I/O, so this stays pure.
    A model or dataset path that exists locally wins over a hub id of the same spelling; one spelled
    as a path is anchored even if missing, so that the launcher can say so before anything runs.
    """

    def anchor(written: str) -> str:
        candidate = anchored(written, base_dir)
        return str(candidate) if is_local(candidate) or names_a_local_path(written) else written

    model = spec.model.model_copy(
        update={
            "name_or_path": anchor(spec.model.name_or_path),
            "adapter": spec.model.adapter and anchor(spec.model.adapter),
        }
    )
    reward_model = spec.ppo.reward_model and anchor(spec.ppo.reward_model)
    datasets = [d.model_copy(update={"path": anchor(d.path)}) for d in spec.data.datasets]
    eval_datasets = [d.model_copy(update={"path": anchor(d.path)}) for d in spec.data.eval_datasets]
    cache_dir = spec.data.cache_dir and str(anchored(spec.data.cache_dir, base_dir))
    registry = spec.data.registry and str(anchored(spec.data.registry, base_dir))
    media_dir = spec.data.media_dir and str(anchored(spec.data.media_dir, base_dir))
    benchmark_dir = spec.eval.data_dir and str(anchored(spec.eval.data_dir, base_dir))
    output_dir = Path(spec.output.dir).expanduser()
    output = spec.output.model_copy(
        update={"dir": str(output_dir if output_dir.is_absolute() else base_dir / output_dir)}
    )
    return spec.model_copy(
        update={
            "model": model,
            "data": spec.data.model_copy(
                update={
                    "datasets": datasets,
                    "eval_datasets": eval_datasets,
                    "cache_dir": cache_dir,
                    "registry": registry,
                    "media_dir": media_dir,
                }
            ),
            "output": output,
            "ppo": spec.ppo.model_copy(update={"reward_model": reward_model}),
            "eval": spec.eval.model_copy(update={"data_dir": benchmark_dir}),
        }
    )


def input_paths(spec: Spec) -> list[tuple[str, str, str | None]]:
    """(key path, path or hub id as written, hub revision) of every model and dataset the spec reads."""
    inputs = [("model.name_or_path", spec.model.name_or_path, spec.model.revision)]
    if spec.model.adapter is not None:
        inputs.append(("model.adapter", spec.model.adapter, None))
    if spec.ppo.reward_model is not None:
        inputs.append(("ppo.reward_model", spec.ppo.reward_model, None))
    for key in ("datasets", "eval_datasets"):
        inputs += [
            (f"data.{key}[{index}].path", dataset.path, dataset.revision)
            for index, dataset in enumerate(getattr(spec.data, key))
        ]
    return inputs


def anchored(written: str, base_dir: Path) -> Path:
    candidate = Path(written).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate
