"""How the preference stages (dpo, kto, orpo, cpo) hand trl their records: one path for text, one for images.

Text records are rendered with the run's template and encoded for trl (`ftc.runtime.data.preference`). An
image+text model gets rows that keep their image files, and trl the model's processor with the stage's collator,
which encodes each row as SFT encodes a conversation (`ftc.runtime.data.images`); trl's forwards pass the pixels
to the policy and the reference alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftc.runs.folder import RunFolder
from ftc.runtime.data.images import vision_parts_of
from ftc.runtime.data.preference import Encoder, tokenizer_and_records
from ftc.runtime.model.reference import reference_model
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.training import fit


@dataclass(frozen=True)
class ImagePath:
    """A stage's way with image records: its rows (spec, vision parts, items, held out → processor, rows,
    held-out rows) and its collator (processor, cutoff_len → collator)."""

    rows: Callable[..., tuple[Any, Any, Any]]
    collator: Callable[[Any, int], Any]


def fit_preferences(
    folder: RunFolder,
    items: Sequence[Any],
    held_out: Sequence[Any],
    *,
    trainer_class: type,
    config_class: type,
    settings: dict[str, Any],
    encode: Encoder,
    what: str = "pairs",
    images: ImagePath | None = None,
    reference: bool = True,
) -> None:
    """Train on `items` (pairs or examples) with trl's `trainer_class`; against the reference model where the
    stage keeps one (`reference`), through `images` where the model sees images and the stage takes them."""
    spec = folder.spec
    parts = vision_parts_of(spec.model) if images is not None else None
    if parts is not None:
        processor, rows, evaluated = images.rows(spec, parts, items, held_out)
        model, data_collator = load_trainable(folder), images.collator(processor, spec.data.cutoff_len)
        settings = {**settings, "remove_unused_columns": False}  # the collator reads the rows' texts and files
        extra: dict[str, Any] = {"data_collator": data_collator}
        evaluated = evaluated or None
    else:
        processor, data, evaluated = tokenizer_and_records(spec, items, held_out, encode, what)
        model, rows, extra = load_trainable(folder), data.records, {}
    if reference:
        extra["ref_model"] = reference_model(spec, folder.plan)
    fit(
        folder,
        model,
        processor,
        rows,
        evaluated,
        trainer_class=trainer_class,
        config_class=config_class,
        settings=settings,
        **extra,
    )
