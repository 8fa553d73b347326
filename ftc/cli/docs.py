"""`ftc schema`, `ftc explain` and `ftc init`: the spec language describing itself."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path

from ftc.errors import FtcError
from ftc.fs import atomic_write_text
from ftc.spec.models import Method, Stage
from ftc.spec.schema import explain, known_keys, schema_text


def write_schema(output: Path | None) -> None:
    if output is None:
        print(schema_text(), end="")
        return
    atomic_write_text(output, schema_text())
    print(f"wrote {output}; point a spec at it with a first line `#:schema {output.name}`")


def explain_key(key: str) -> None:
    try:
        print(explain(key))
    except KeyError as error:
        unknown = str(error.args[0])
        close = difflib.get_close_matches(key, known_keys(), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else "sections: " + ", ".join(k for k in known_keys() if "." not in k)
        )
        raise FtcError(f"no key '{unknown}' in the spec language", hint) from None


def write_starter(path: Path, stage: str, method: str, model: str | None, force: bool, vision: bool = False) -> None:
    from ftc.spec import SpecError, parse_spec
    from ftc.spec.models import FORMAT_FIELDS
    from ftc.spec.starter import TEXT_MODEL, VISION_MODEL, starter_spec
    from ftc.stages import STAGES

    for name, value, allowed in (("stage", stage, Stage), ("method", method, Method)):
        choices = typing.get_args(allowed)
        if value not in choices:
            raise FtcError(f"unknown {name} '{value}'", f"choose one of: {', '.join(choices)}")
    runs_with = STAGES[stage].methods
    if method not in runs_with:
        raise FtcError(
            f"train.stage = '{stage}' does not run with train.method = '{method}'",
            f"use one of: {', '.join(runs_with)}",
        )
    template = None
    if vision:
        data_format = STAGES[stage].formats[0]
        if "images" not in FORMAT_FIELDS[data_format]:
            raise FtcError(
                f"train.stage = '{stage}' reads {data_format} records, which carry no images",
                "--vision starts a stage whose format takes an images list ("
                + ", ".join(name for name, record in STAGES.items() if record.takes_images)
                + ")",
            )
        model = model or VISION_MODEL
        template = _vision_template(model)
    if path.exists() and not force:
        raise FtcError(f"{path} exists", "name another file, or pass --force to replace it")
    text = starter_spec(stage, method, model or TEXT_MODEL, vision_template=template)
    try:
        parse_spec(text, str(path))  # a starter that does not validate would be our bug, not the user's
    except SpecError as error:
        raise FtcError(f"the starter for {stage} with {method} does not validate:\n{error}", None) from None
    atomic_write_text(path, text)
    on = " on images" if vision else ""
    print(f"wrote {path}: a {stage} run with {method}{on}; next: ftc validate {path} && ftc plan {path}")


def _vision_template(model: str) -> str:
    """The chat template the model's family record names for it (its turns and its processor's image text)."""
    from ftc.compiler.architectures import find_architecture
    from ftc.compiler.model_families import FAMILIES

    arch = find_architecture(model)
    if arch is None or arch.vision is None:
        raise FtcError(
            f"--vision: {model!r} is not an image+text model the registry knows",
            "name one with --model (e.g. Qwen/Qwen2-VL-2B-Instruct, llava-hf/llava-1.5-7b-hf, google/gemma-3-4b-it), "
            "or drop --vision",
        )
    return FAMILIES[arch.model_type].vision.template
