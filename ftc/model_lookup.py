"""The model's shapes for the planner: a local folder's config.json, else ftc's registry of hub ids.

The I/O edge of planning: reading config.json happens here, the compiler only sees the parsed dict.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftc.compiler.architectures import architecture_from_config, find_architecture
from ftc.compiler.model_shapes import Architecture
from ftc.errors import FtcError
from ftc.spec.models import Spec


def architecture_for(spec: Spec, base_dir: Path) -> Architecture | None:
    if spec.model.architecture is not None:
        return architecture_from_config(spec.model.architecture)  # the spec's own word comes first
    written = Path(spec.model.name_or_path).expanduser()
    folder = written if written.is_absolute() else base_dir / written
    config_file = folder / "config.json"
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise FtcError(
                f"{config_file}: cannot read it ({error})", "model.name_or_path needs a valid config.json"
            ) from None
        return architecture_from_config(config)
    # A local folder's own config wins over a registry entry that happens to share its name.
    return None if folder.is_dir() else find_architecture(spec.model.name_or_path)
