"""What trains in an image+text model: [vision] applied to its tower and projector, and the adapter kept on its
language model.

Where the parts are is the model family's record (`VisionParts`); the method decides what trains in the
language model, and [vision] decides the rest: the tower frozen unless freeze_tower = false, the projector
trained unless freeze_projector, or the projector alone (projector_only). A LoRA adapter covers the language
model's linear layers, and the tower's or the projector's only where lora.target names one of theirs; a
projector or tower that trains does so whole, saved with the adapter (peft's modules_to_save).
"""

from __future__ import annotations

import re
from typing import Any

from ftc.compiler.model_families import FAMILIES, VisionParts
from ftc.spec.models import Spec


def vision_parts(model_or_config: Any) -> VisionParts | None:
    """The family record's parts for a loaded model or its config; None for a text-only model."""
    config = getattr(model_or_config, "config", model_or_config)
    family = FAMILIES.get(str(getattr(config, "model_type", "")).lower())
    return family.vision if family is not None else None


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def part_of(name: str, parts: VisionParts) -> str:
    """Which part a parameter or module (by its dotted name in the bare model) belongs to."""
    if _under(name, parts.projector):
        return "projector"
    if _under(name, parts.tower):
        return "tower"
    return "language_model"


def parts_that_train(spec: Spec) -> dict[str, bool]:
    """[vision]'s word on the tower and the projector."""
    vision = spec.vision
    return {"tower": not vision.freeze_tower, "projector": vision.projector_only or not vision.freeze_projector}


def apply_vision_section(model: Any, spec: Spec, parts: VisionParts) -> None:
    """After the method chose what trains (full: all, freeze: the last layers): the tower and the projector as
    [vision] says; with projector_only, nothing else."""

    trains = parts_that_train(spec)
    for name, param in model.named_parameters():
        part = part_of(name, parts)
        if part != "language_model":
            param.requires_grad_(trains[part])
            if trains[part] and param.is_floating_point() and not spec.train.pure_bf16:
                param.data = param.data.float()  # as freeze does: small updates are not lost to bf16 rounding
        elif spec.vision.projector_only:
            param.requires_grad_(False)


def _linear_names_by_part(model: Any, parts: VisionParts) -> dict[str, set[str]]:
    from ftc.runtime.model.lora import linear_layer_names

    found: dict[str, set[str]] = {"language_model": set(), "tower": set(), "projector": set()}
    linear = linear_layer_names(model)
    for name, _ in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if short in linear:
            found[part_of(name, parts)].add(short)
    return found


def adapter_scope(model: Any, spec: Spec, targets: list[str], parts: VisionParts) -> dict[str, Any]:
    """peft's target_modules (a pattern: the language model's layers of `targets`, and the tower's or projector's
    where a target is theirs alone) and modules_to_save (the parts that train whole)."""
    names = _linear_names_by_part(model, parts)
    in_language_model = sorted(set(targets) & names["language_model"])
    elsewhere = sorted(set(targets) - names["language_model"])
    outside = "|".join(re.escape(prefix) + r"\." for prefix in (parts.tower, parts.projector))
    patterns = []
    if in_language_model:
        patterns.append(rf"(?!{outside}).*\.({'|'.join(map(re.escape, in_language_model))})")
    if elsewhere:
        patterns.append(rf".*\.({'|'.join(map(re.escape, elsewhere))})")
    trains = parts_that_train(spec)
    whole = [parts.tower] if trains["tower"] else []
    if trains["projector"] and not (whole and _under(parts.projector, parts.tower)):
        whole.append(parts.projector)
    return {
        "target_modules": "|".join(f"(?:{pattern})" for pattern in patterns),
        "modules_to_save": [prefix.rsplit(".", 1)[-1] for prefix in whole] or None,
    }


def skipped_by_quantization(parts: VisionParts) -> list[str]:
    """Modules a quantized base keeps in its own precision: the tower and the projector (QLoRA quantizes the
    language model only); bitsandbytes matches these by name. Naming any replaces transformers' default of the
    output head, so the head is named too."""
    return [parts.tower.rsplit(".", 1)[-1], parts.projector.rsplit(".", 1)[-1], "lm_head"]
