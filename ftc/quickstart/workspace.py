"""`ftc quickstart`: everything a first run needs, made offline from code with fixed seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ftc.errors import FtcError
from ftc.fs import atomic_write_text
from ftc.targets.render import render

SPEC_NAME = "quickstart.toml"
_TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets")


def require_training_extra() -> None:
    missing = [name for name in _TRAINING_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise FtcError(
            f"training needs {', '.join(missing)}, which are not installed",
            "pip install 'torch>=2.6,<2.15' first (the CPU wheel), then pip install 'ftc[train]'",
        )


def write_quickstart(folder: Path, steps: int = 60, seed: int = 0, vision: bool = False) -> Path:
    """Build the tiny model, tokenizer and dataset under `folder` and write their spec; returns its path.
    `vision`: a tiny LLaVA with its processor and a dataset of pictures instead."""
    require_training_extra()
    if vision:
        return _write_vision_quickstart(folder, steps, seed)
    from ftc.quickstart.tiny import build_tiny_model, write_tiny_alpaca

    folder.mkdir(parents=True, exist_ok=True)
    print(f"building a tiny model, tokenizer and dataset in {folder} (seed {seed})", flush=True)
    write_tiny_alpaca(folder / "data" / "alpaca_tiny.json", seed=seed)
    build_tiny_model(folder / "model", seed=seed)
    spec_path = folder / SPEC_NAME
    spec_text = render(
        "quickstart.toml.j2", spec_name=SPEC_NAME, steps=steps, learning_rate="2e-3", save_steps=max(1, steps // 2)
    )
    atomic_write_text(spec_path, spec_text)
    return spec_path


def _write_vision_quickstart(folder: Path, steps: int, seed: int) -> Path:
    from ftc.quickstart.tiny_vision import build_tiny_llava, write_shapes_dataset

    folder.mkdir(parents=True, exist_ok=True)
    print(f"building a tiny LLaVA, its processor and a dataset of pictures in {folder} (seed {seed})", flush=True)
    write_shapes_dataset(folder / "data", n=128, seed=seed)
    build_tiny_llava(folder / "model", seed=seed)
    spec_path = folder / SPEC_NAME
    spec_text = render(
        "quickstart_vision.toml.j2",
        spec_name=SPEC_NAME,
        steps=steps,
        learning_rate="5e-3",
        save_steps=max(1, steps // 2),
    )
    atomic_write_text(spec_path, spec_text)
    return spec_path
