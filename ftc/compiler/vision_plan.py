"""What an image+text model's images do to the plan: the tokens a row holds, the notes, and the refusals.

The arithmetic of one image is `ftc.compiler.vision`'s; this module reads the spec's image keys, its stage
and its [vision] section, and says what the plan assumes.
"""

from __future__ import annotations

from ftc.compiler.model_shapes import Architecture
from ftc.compiler.vision import ImageBudget, image_budget
from ftc.errors import FtcError
from ftc.spec.models import Spec
from ftc.stages import STAGES

# The note an image+text model's plan carries (and only its): what the images cost. `ftc doctor` and the
# extras read it to tell an image run from a text one.
IMAGES_NOTE = "images: "
# The keys that mean something only for an image+text model.
_IMAGE_KEYS = ("data.image_max_pixels", "data.image_min_pixels")


def largest_image(spec: Spec, arch: Architecture | None) -> ImageBudget | None:
    """The largest image a row holds, for a model with a vision tower; None for a text model or unknown shapes."""
    if arch is None or arch.vision is None:
        return None
    return image_budget(arch.vision, spec.data.image_min_pixels, spec.data.image_max_pixels)


def row_tokens(spec: Spec, arch: Architecture | None) -> int:
    """Tokens of the longest row: data.cutoff_len of text, and an image's tokens beside them."""
    budget = largest_image(spec, arch)
    return spec.data.cutoff_len + (budget.tokens if budget else 0)


def vision_notes(spec: Spec, arch: Architecture | None) -> tuple[str, ...]:
    """What the images cost the plan, or a refusal where the spec sets image keys for a text-only model."""
    set_here = [key for key in _IMAGE_KEYS if getattr(spec.data, key.split(".")[1]) is not None]
    set_here += ["[vision]"] if spec.vision.model_fields_set else []
    if arch is not None and arch.vision is None and set_here:
        raise FtcError(
            f"{set_here[0]} is set, but {spec.model.name_or_path!r} ({arch.model_type}) has no vision tower",
            "remove it, or train an image+text model (model_type llava, qwen2_vl, qwen2_5_vl or gemma3)",
        )
    budget = largest_image(spec, arch)
    if budget is None:
        return ()
    stage = STAGES[spec.train.stage]
    if not stage.takes_images:
        able = [name for name, record in STAGES.items() if record.takes_images]
        raise FtcError(
            f"train.stage = {stage.name!r} cannot train an image+text model ({spec.model.name_or_path!r}, "
            f"{arch.model_type}): {stage.no_images_why}",
            f"train an image+text model with train.stage = {' or '.join(map(repr, able))}, or train the "
            f"{stage.name} stage on a text-only model",
        )
    if spec.data.packing:
        raise FtcError(
            f"data.packing = true, but {spec.model.name_or_path!r} ({arch.model_type}) is an image+text model: "
            "packed rows join several examples in one sequence, and the processor's image tokens and their pixels "
            "(with Qwen2-VL's image grids and multimodal positions) are matched per row, so one example's images "
            "would be read into another's",
            "set data.packing = false; image rows are padded in their batch",
        )
    vision = spec.vision
    trains = (
        "the projector alone"
        if vision.projector_only
        else ", ".join(
            part
            for part, frozen in (("the vision tower", vision.freeze_tower), ("the projector", vision.freeze_projector))
            if not frozen
        )
        or "neither the vision tower nor the projector"
    )
    # A pair's chosen and rejected rows each carry the prompt, its images with it (ftc.runtime.data.images).
    pairs = "; a pair is two such rows, and its images pass the tower once for each" if stage.paired else ""
    if stage.kl_rows:  # the KL rows hold their prompts' images (ftc.runtime.data.images.KtoImageCollator)
        pairs = (
            "; each example's KL row (its prompt and images with another example's reply) passes the tower and the "
            "model too, without gradients and before the loss's forward: its activations are freed by then, so it "
            "adds compute, not a term"
        )
    return (
        f"{IMAGES_NOTE}{budget.reason}; the estimate assumes one such image in every row, so each row is "
        f"{spec.data.cutoff_len} + {budget.tokens} = {row_tokens(spec, arch)} tokens{pairs}",
        f"vision: {trains} trains beside the method's weights; vision_activations holds the image side's "
        f"activations ({budget.tower_tokens} tower tokens per image)",
    )
