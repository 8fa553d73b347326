"""The lock document for a loaded spec and its plan, as things stand on this machine now."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.data_cache.key import prepared_key
from ftc.errors import FtcError
from ftc.lock.hub_pins import locked_commit
from ftc.lock.images import LockedImages, dataset_images, missing_image_error
from ftc.lock.inputs import hash_inputs, text_sha256, versions
from ftc.lock.record import LockedInput, RunFacts, lock_document
from ftc.runs.environment import environment_names
from ftc.spec.chat_templates import TEMPLATES
from ftc.spec.loader import LoadedSpec
from ftc.spec.models import Spec
from ftc.spec.resolve import anchored, input_paths, names_a_local_path, resolve_paths


def current_lock(loaded: LoadedSpec, plan: Plan, *, writing: bool = False) -> dict[str, Any]:
    """The lock as things stand now. `writing`: for `ftc lock`, which refuses a dataset naming a missing image;
    compared against a lock, a missing image is drift instead."""
    spec, base_dir = loaded.spec, loaded.base_dir
    local: dict[str, Path] = {}
    hub: dict[str, tuple[str, str | None]] = {}
    for key, written, revision in input_paths(spec):
        path = anchored(written, base_dir)
        if path.exists():
            local[key] = path
        elif names_a_local_path(written):
            raise FtcError(f"{key}: {path} does not exist", "a lock records the content of local inputs; create it")
        else:
            hub[key] = (written, revision)
    hashed = hash_inputs(local.values())
    images = _images_of_datasets(spec, base_dir, local)
    if writing:
        for key, named in images.items():
            if named.missing:
                raise FtcError(*missing_image_error(key, named))
    entries = []
    for key, written, _ in input_paths(spec):
        if key in local:
            entries.append(LockedInput(key, written, "local", files=hashed[local[key]].files, images=images.get(key)))
        else:
            revision = hub[key][1]
            commit = locked_commit(key, written, revision)
            entries.append(LockedInput(key, written, "hub", revision=revision, commit=commit))
    model_folder = local.get("model.name_or_path")
    data_key = prepared_key(resolve_paths(spec, base_dir, is_local=Path.exists))
    facts = RunFacts(
        seed=spec.train.seed,
        template=spec.model.template,
        template_sha256=template_sha256(spec.model.template, model_folder),
        environment=environment_names(spec, plan),
        data_cache_key=data_key.digest,
        data_cache_off=data_key.uncached or "",
    )
    lock_dir = loaded.path.resolve().parent
    return lock_document(
        spec_name=loaded.path.name,
        sources=[Path(os.path.relpath(source.resolve(), lock_dir)).as_posix() for source in loaded.sources],
        overrides=list(loaded.overrides),
        spec_document=spec.model_dump(mode="json"),
        plan=plan,
        versions=versions(),
        inputs=entries,
        facts=facts,
    )


def _images_of_datasets(spec: Spec, base_dir: Path, local: dict[str, Path]) -> dict[str, LockedImages]:
    """Input key → the images the records of that local dataset name."""
    media_dir = anchored(spec.data.media_dir, base_dir) if spec.data.media_dir else None
    found = {}
    for group in ("datasets", "eval_datasets"):
        for index, dataset in enumerate(getattr(spec.data, group)):
            key = f"data.{group}[{index}].path"
            if key in local:
                named = dataset_images(dataset.model_copy(update={"path": str(local[key])}), media_dir)
                if named is not None:
                    found[key] = named
    return found


def template_sha256(name: str, model_folder: Path | None) -> str:
    """The hash of the template text the run will format conversations with."""
    if name != "auto":
        return text_sha256(TEMPLATES[name].jinja())
    if model_folder is None or not model_folder.is_dir():
        return ""  # the hub tokenizer's own template: its revision, locked with the model, pins it
    standalone = model_folder / "chat_template.jinja"
    if standalone.is_file():
        return text_sha256(standalone.read_text(encoding="utf-8"))
    config = model_folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            return text_sha256(template)
    return ""
