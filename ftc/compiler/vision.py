"""Images in a row: how many language-model tokens an image becomes, and what the vision tower holds for it.

Pure arithmetic on a `Vision` record and the spec's pixel bounds, for the planner. A fixed-resolution
tower (LLaVA-1.5, Gemma 3) resizes every image to its square, so each image is the same number of tokens. A
dynamic-resolution one (Qwen2-VL, Qwen2.5-VL) resizes each image, aspect kept, to sides that are
multiples of patch_size × spatial_merge (28 px) with an area inside [min_pixels, max_pixels]: an image
of area A becomes at most A / 28² tokens, so the largest image allowed bounds the row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ftc.compiler.model_shapes import Vision
from ftc.errors import FtcError

# Qwen2-VL's and Qwen2.5-VL's published preprocessor_config.json: min_pixels 56 × 56, max_pixels 28 × 28 × 16384.
PROCESSOR_MIN_PIXELS = 56 * 56
PROCESSOR_MAX_PIXELS = 28 * 28 * 16384


@dataclass(frozen=True)
class ImageBudget:
    """What the largest image the data may hold costs; the plan assumes one such image per row."""

    tokens: int  # language-model tokens it becomes (after Qwen's 2 × 2 merge; LLaVA: one per patch)
    tower_tokens: int  # the sequence its vision tower runs over (patches, and CLIP's class token)
    reason: str  # which image bounds it, in words for the plan


def image_budget(vision: Vision, min_pixels: int | None, max_pixels: int | None) -> ImageBudget:
    """Tokens of the largest image `data.image_max_pixels` lets through (the processor's bound when unset)."""
    if vision.fixed_image_tokens is not None:
        side = vision.image_size
        patches = (side // vision.patch_size) ** 2
        ignored = " (data.image_max_pixels does not change it)" if max_pixels is not None else ""
        merged = ""
        if vision.spatial_merge > 1:
            how = "averaged" if vision.merge == "average" else "merged"
            merged = f" {how} {vision.spatial_merge} × {vision.spatial_merge} into"
        markers = f" and {vision.marker_tokens} marker tokens around them" if vision.marker_tokens else ""
        return ImageBudget(
            tokens=vision.fixed_image_tokens + vision.marker_tokens,
            tower_tokens=patches + vision.class_token,
            reason=f"every image is resized to {side} × {side} px: {patches} patches of {vision.patch_size} px,"
            f"{merged} {vision.fixed_image_tokens} image tokens{markers}{ignored}",
        )
    unit = vision.patch_size * vision.spatial_merge  # the side of the pixels one token covers
    low = PROCESSOR_MIN_PIXELS if min_pixels is None else min_pixels
    high = PROCESSOR_MAX_PIXELS if max_pixels is None else max_pixels
    if high < unit * unit:
        raise FtcError(
            f"data.image_max_pixels = {high} is below one image token of model_type '{vision.model_type}' "
            f"({unit} × {unit} = {unit * unit} px)",
            f"set data.image_max_pixels to at least {unit * unit}; 28 × 28 × 1280 = 1003520 keeps up to 1280 tokens",
        )
    tokens = high // (unit * unit)
    where = "data.image_max_pixels" if max_pixels is not None else "the processor's max_pixels"
    fewest = math.ceil(low / (unit * unit))
    return ImageBudget(
        tokens=tokens,
        tower_tokens=tokens * vision.patches_per_token,
        reason=f"the largest image has {high} px ({where}): at most {high} / {unit}² = {tokens} image tokens "
        f"({tokens * vision.patches_per_token} patches of {vision.patch_size} px before the "
        f"{vision.spatial_merge} × {vision.spatial_merge} merge); a smaller image is scaled up to at least "
        f"{fewest} tokens ({low} px)",
    )


@dataclass(frozen=True)
class TowerActivations:
    """Bytes the image side of a step holds: `saved` lives until the backward, `working` only while the tower runs."""

    saved: float
    working: float


def tower_activations(
    vision: Vision, budget: ImageBudget, images: int, dtype_bytes: int, *, tower_trains: bool, projector_trains: bool
) -> TowerActivations:
    """The vision tower's and projector's activations for `images` images of the budget's size.

    A tower that takes no gradient saves nothing for the backward: while it runs it holds the pixel
    patches and one block's working set (the block's input, q, k and v, the attention output, and the
    MLP's hidden, two of them for a gated MLP). A tower that trains saves about that much in every block,
    plus the block's input and its normalized copy; its blocks are not assumed to be checkpointed. A
    projector that trains saves its input features and its middle layer before and after the activation;
    Gemma 3's saves the pooled tokens and their normalized copy, the input of its one matrix.
    """
    h, patches = vision.hidden_size, images * budget.tower_tokens
    mlp_hidden = vision.intermediate_size * (2 if vision.mlp == "gated" else 1)
    pixels = patches * vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    block = patches * (5 * h + mlp_hidden)
    saved = vision.num_layers * (block + 2 * patches * h) if tower_trains else 0
    image_tokens = images * (budget.tokens - vision.marker_tokens)
    if (projector_trains or tower_trains) and vision.projector == "matrix":
        saved += 2 * image_tokens * h  # the pooled tokens and their normalized copy; averaging saves nothing
    elif projector_trains or tower_trains:  # the tower's gradient flows back through the projector
        saved += patches * h * vision.feature_layers + 2 * image_tokens * vision.projector_hidden
    return TowerActivations(saved=float(saved * dtype_bytes), working=float((pixels + block) * dtype_bytes))
