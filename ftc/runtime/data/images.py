"""Conversations with images → batches for an image+text model, through the model's processor.

A row keeps the conversation's template segments and its image files; the batch is made when it is
needed, so pixels are never held for the whole dataset. Each segment is encoded on its own, as text
rows are (`ftc.runtime.data.tokenize`): a prompt segment that holds images goes through the processor,
which expands each image's text to the image's tokens and returns its pixels; every other segment through
the tokenizer alone. The labels are the reply tokens only: prompt and image tokens are -100.

A preference pair is two such rows, the prompt (with its images) followed by each reply, encoded alike:
`PairImageCollator` lays them out as trl's DPO batch. A KTO example is one such row, and `KtoImageCollator` adds
its KL row: the same prompt, images and all, followed by another example's reply. In both only the reply trains,
as trl's preference trainers learn from the completion alone (not from the prompt's earlier assistant turns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import Conversation, KtoExample, PreferencePair
from ftc.runtime.data.token_rows import IGNORE_INDEX
from ftc.runtime.data.tokenize import conversation_segments_of
from ftc.spec.chat_templates import Message


def image_rows(tokenizer: Any, conversations: Sequence[Conversation], template_name: str) -> list[dict[str, Any]]:
    """One row per conversation: its segments' texts, which of them train, its image files and where it is from."""
    rows = []
    for conversation in conversations:
        segments = conversation_segments_of(tokenizer, conversation, template_name)
        rows.append(
            {
                "texts": [segment.text for segment in segments],
                "trainable": [segment.trainable for segment in segments],
                # not "images": trl takes a row with that column for its own image handling
                "image_files": list(conversation.images),
                "where": conversation.where,
            }
        )
    return rows


def reply_rows(
    tokenizer: Any, where: str, prompt: list[Message], replies: Sequence[str], images: Sequence[str], template_name: str
) -> list[dict[str, Any]]:
    """A row per reply to the same prompt, as `image_rows` makes a conversation's, with the reply (its last trainable
    segment) the only one that trains; "reply_at" is the reply's first segment, where another reply may be put."""
    conversations = [
        Conversation(where, [*prompt, {"role": "assistant", "content": reply}], images=tuple(images))
        for reply in replies
    ]
    rows = image_rows(tokenizer, conversations, template_name)
    for row in rows:
        reply_at = max(index for index, trainable in enumerate(row["trainable"]) if trainable)
        row["trainable"] = [index == reply_at for index in range(len(row["trainable"]))]
        row["reply_at"] = reply_at
    return rows


def image_pair_rows(tokenizer: Any, pairs: Sequence[PreferencePair], template_name: str) -> list[dict[str, Any]]:
    """One row per pair: the prompt followed by each reply (`reply_rows`), and the pair's image files under "images",
    the column by which trl's DPOTrainer knows the pairs hold images (it then leaves them untokenized, to the
    collator)."""
    rows = []
    for pair in pairs:
        chosen, rejected = reply_rows(
            tokenizer, pair.where, pair.prompt, (pair.chosen, pair.rejected), pair.images, template_name
        )
        rows.append({"chosen": chosen, "rejected": rejected, "images": list(pair.images)})
    return rows


def image_kto_rows(tokenizer: Any, examples: Sequence[KtoExample], template_name: str) -> list[dict[str, Any]]:
    """One row per example: its prompt and reply (`reply_rows`), whether the reply is desirable, and the example's
    image files under "images", the column by which trl's KTOTrainer knows the examples hold images (it then leaves
    them untokenized, to the collator)."""
    rows = []
    for example in examples:
        (row,) = reply_rows(
            tokenizer, example.where, example.prompt, (example.completion,), example.images, template_name
        )
        rows.append({"example": row, "label": example.label, "images": list(example.images)})
    return rows


def apply_pixel_bounds(processor: Any, bounds: tuple[str, str] | None, low: int | None, high: int | None) -> None:
    """data.image_min_pixels / image_max_pixels, written into the image processor's `size` under the keys the
    model's family names; a fixed-resolution processor (no keys) resizes every image to its square anyway."""
    if bounds is None or (low is None and high is None):
        return
    image_processor = processor.image_processor
    size = dict(image_processor.size)
    for key, value in zip(bounds, (low, high), strict=True):
        if value is not None:
            size[key] = value
    image_processor.size = size


class ImageCollator:
    """Rows of `image_rows` → a padded batch: input_ids, attention_mask, labels, and what the processor adds
    (pixel_values; Qwen2-VL's image_grid_thw and mm_token_type_ids; Gemma 3's token_type_ids, which mark the
    image tokens that its language model attends to both ways). A per-token extra is 0 on text the tokenizer
    alone encoded and on padding, as the processor would write it there."""

    def __init__(self, processor: Any, cutoff_len: int) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.cutoff_len = cutoff_len

    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        import torch
        from PIL import Image

        images = [Image.open(path).convert("RGB") for path in row["image_files"]]
        image_text = self.processor.image_token
        ids: list[int] = []
        labels: list[int] = []
        per_token: dict[str, list[Any]] = {}  # extras aligned with the tokens, segment by segment
        per_image: dict[str, list[Any]] = {}
        used = 0
        for text, trainable in zip(row["texts"], row["trainable"], strict=True):
            count = text.count(image_text)
            if count:
                out = self.processor(
                    text=[text], images=images[used : used + count], return_tensors="pt", add_special_tokens=False
                )
                used += count
                piece = out["input_ids"][0].tolist()
                for key, value in out.items():
                    if key in ("input_ids", "attention_mask"):
                        continue
                    if value.dim() == 2 and value.shape == (1, len(piece)):
                        per_token.setdefault(key, []).append((len(ids), value[0]))
                    else:
                        per_image.setdefault(key, []).append(value)
            else:
                piece = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if trainable else [IGNORE_INDEX] * len(piece)
        if len(ids) > self.cutoff_len:
            # the tokens an image's features fill (Gemma 3's soft tokens, not the start marker it is written as)
            image_ids = set(self.processor.image_token_ids)
            if not image_ids.isdisjoint(ids[self.cutoff_len :]):
                raise RuntimeUserError(
                    f"{row['where']}: its images' tokens run past data.cutoff_len = {self.cutoff_len} "
                    f"({len(ids)} tokens in all), and an image cannot be cut",
                    "raise data.cutoff_len, or lower data.image_max_pixels",
                )
            ids, labels = ids[: self.cutoff_len], labels[: self.cutoff_len]
        extras = {}
        for key, pieces in per_token.items():
            aligned = torch.zeros(len(ids), dtype=pieces[0][1].dtype)
            for start, value in pieces:
                aligned[start : start + len(value)] = value[: max(0, len(ids) - start)]
            extras[key] = aligned
        return {"input_ids": ids, "labels": labels, "per_token": extras, "per_image": per_image}

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self.collate([self.encode(row) for row in rows])

    def collate(self, encoded: list[dict[str, Any]]) -> dict[str, Any]:
        """Rows of `encode`, padded into one batch."""
        import torch

        longest = max(len(example["input_ids"]) for example in encoded)
        pad = self.tokenizer.pad_token_id

        def padded(values: list[int], fill: int) -> list[int]:
            return values + [fill] * (longest - len(values))

        batch: dict[str, Any] = {
            "input_ids": torch.tensor([padded(example["input_ids"], pad) for example in encoded]),
            "attention_mask": torch.tensor(
                [padded([1] * len(example["input_ids"]), 0) for example in encoded], dtype=torch.long
            ),
            "labels": torch.tensor([padded(example["labels"], IGNORE_INDEX) for example in encoded]),
        }
        for key in {key for example in encoded for key in example["per_token"]}:
            rows_of_key = []
            for example in encoded:
                value = example["per_token"].get(key)
                row = torch.zeros(longest, dtype=value.dtype if value is not None else torch.long)
                if value is not None:
                    row[: len(value)] = value
                rows_of_key.append(row)
            batch[key] = torch.stack(rows_of_key)
        for key in {key for example in encoded for key in example["per_image"]}:
            batch[key] = torch.cat([value for example in encoded for value in example["per_image"].get(key, [])])
        return batch


class PairImageCollator:
    """Rows of `image_pair_rows` → trl's DPO batch: every pair's chosen row first, then every rejected one (the
    halves trl's loss splits), each encoded and padded by `ImageCollator`, so both see the prompt's images (the
    reference model is given the same batch). completion_mask marks the reply tokens the labels would learn."""

    def __init__(self, processor: Any, cutoff_len: int) -> None:
        self.rows = ImageCollator(processor, cutoff_len)

    def __call__(self, pairs: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.rows([pair["chosen"] for pair in pairs] + [pair["rejected"] for pair in pairs])
        batch["completion_mask"] = (batch.pop("labels") != IGNORE_INDEX).long()
        return batch


class KtoImageCollator:
    """Rows of `image_kto_rows` → trl's KTO batch: each example's row, encoded and padded by `ImageCollator`, and its KL
    row under the "KL_" keys: the example's prompt, its images with it, followed by the reply of the example before it
    in the micro-batch (the first takes the last's), the mismatch trl's own collators make. trl's KL forward passes
    the batch's pixels (and image grids) with the KL ids, so each KL row holds its own example's images, in the same
    order; the per-token extras (Qwen2-VL's mm_token_type_ids, Gemma 3's token_type_ids) it takes from their "KL_"
    copies. The reference is given the same batch."""

    def __init__(self, processor: Any, cutoff_len: int) -> None:
        self.rows = ImageCollator(processor, cutoff_len)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [example["example"] for example in examples]
        mismatched = [
            {
                **row,
                "texts": row["texts"][: row["reply_at"]] + other["texts"][other["reply_at"] :],
                "trainable": row["trainable"][: row["reply_at"]] + other["trainable"][other["reply_at"] :],
            }
            for row, other in zip(rows, rows[-1:] + rows[:-1], strict=True)
        ]
        batch = self.rows(rows)
        batch["completion_mask"] = (batch.pop("labels") != IGNORE_INDEX).long()
        encoded = [self.rows.encode(row) for row in mismatched]
        kl = self.rows.collate(encoded)
        batch["KL_input_ids"], batch["KL_attention_mask"] = kl["input_ids"], kl["attention_mask"]
        batch["KL_completion_mask"] = (kl["labels"] != IGNORE_INDEX).long()
        for key in {key for example in encoded for key in example["per_token"]}:
            batch[f"KL_{key}"] = kl[key]
        batch["label"] = torch.tensor([example["label"] for example in examples])
        return batch


def vision_parts_of(model: Any) -> Any:
    """The spec's model's VisionParts (from its config), or None for a text-only model."""
    from ftc.runtime.model.loading import model_config
    from ftc.runtime.model.vision import vision_parts

    return vision_parts(model_config(model))


def stage_processor(spec: Any, parts: Any) -> Any:
    """The model's processor as a stage encodes with it: the run's template on its tokenizer, the spec's pixel bounds
    on its image processor."""
    from ftc.runtime.data.tokenize import use_template
    from ftc.runtime.model.processor import load_processor

    model = spec.model
    processor = load_processor(model.name_or_path, model.revision, model.trust_remote_code)
    use_template(processor.tokenizer, model.template)
    apply_pixel_bounds(processor, parts.pixel_bounds, spec.data.image_min_pixels, spec.data.image_max_pixels)
    return processor


def image_stage_data(spec: Any, parts: Any) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """(processor, train rows, held-out rows) for a stage that trains an image+text model on conversations."""
    from ftc.runtime.data.loading import load_conversations, train_eval_split

    seed = spec.train.seed
    train, held_out = train_eval_split(load_conversations(spec.data, seed), spec.data, seed)
    processor = stage_processor(spec, parts)
    template = spec.model.template
    return (
        processor,
        image_rows(processor.tokenizer, train, template),
        image_rows(processor.tokenizer, held_out, template),
    )


def image_pair_data(
    spec: Any, parts: Any, pairs: Sequence[PreferencePair], held_out: Sequence[PreferencePair]
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """(processor, train rows, held-out rows) for a preference stage that trains an image+text model."""
    processor = stage_processor(spec, parts)
    template = spec.model.template
    rows = image_pair_rows(processor.tokenizer, pairs, template)
    images = sum(len(row["images"]) for row in rows)
    line = f"data: {len(rows)} pairs with {images} images, template {template}; the processor makes each batch"
    print(line, flush=True)
    return processor, rows, image_pair_rows(processor.tokenizer, held_out, template)


def image_kto_data(
    spec: Any, parts: Any, examples: Sequence[KtoExample], held_out: Sequence[KtoExample]
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """(processor, train rows, held-out rows) for KTO on an image+text model."""
    processor = stage_processor(spec, parts)
    template = spec.model.template
    rows = image_kto_rows(processor.tokenizer, examples, template)
    images = sum(len(row["images"]) for row in rows)
    desirable = sum(row["label"] for row in rows)
    print(
        f"data: {len(rows)} examples ({desirable} desirable, {len(rows) - desirable} undesirable) with {images} "
        f"images, template {template}; the processor makes each batch and its KL rows",
        flush=True,
    )
    return processor, rows, image_kto_rows(processor.tokenizer, held_out, template)
