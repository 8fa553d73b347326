"""Tiny image+text models and an image dataset, built offline from code, for `ftc quickstart --vision` and the tests.

Three designs, each a real transformers architecture at toy size, saved so that `from_pretrained` loads
model, tokenizer and processor alike: LLaVA (a CLIP tower of fixed resolution, an MLP projector, Llama),
Qwen2-VL (a dynamic-resolution tower whose patch merger is the projector, a Qwen2 language model with
multimodal rotary positions) and Gemma 3 (a SigLIP tower whose patches are averaged into a few tokens, one
projection matrix, a Gemma 3 language model that attends both ways within an image). The processors are the
Pillow image processors, so nothing needs torchvision.

The dataset is pictures of one coloured shape each, drawn with Pillow, and captions that name the colour
and the shape: learnable from the pixels within a few steps, and only from the pixels.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from ftc.quickstart.tiny import train_tiny_tokenizer
from ftc.spec.chat_templates import IMAGE, TEMPLATES

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (240, 220, 20)}
SHAPES = ("circle", "square", "triangle")
QUESTIONS = ("What is in the picture?", "Describe the image.", "What shape and colour do you see?")
IMAGE_SIDE = 56  # two Qwen2-VL token units (28 px) a side: 4 image tokens after its 2 x 2 merge

# Each tiny model's text side: its template's markers kept whole by the tokenizer, and which ones transformers
# needs by name.
_LLAVA_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "image_token": IMAGE}
_QWEN2_VL_TOKENS = {
    "bos_token": None,
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
    "im_start_token": "<|im_start|>",
}
# Gemma 3's processor reads its image markers off the tokenizer by these names: the start-of-image marker is the
# template's placeholder, which the processor replaces by itself, the image's soft tokens and the end marker.
_GEMMA3_TOKENS = {
    "bos_token": "<bos>",
    "eos_token": "<end_of_turn>",
    "pad_token": "<pad>",
    "start_of_turn": "<start_of_turn>",
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}


def caption(colour: str, shape: str) -> str:
    return f"A {colour} {shape}."


def draw_shape(colour: str, shape: str, side: int = IMAGE_SIDE, seed: int = 0):
    """One RGB picture: a `colour` `shape` on a light background, placed and sized a little at random."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    background = tuple(rng.randint(225, 255) for _ in range(3))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    size = rng.randint(side // 2, side - 8)
    left, top = rng.randint(2, side - size - 2), rng.randint(2, side - size - 2)
    box = (left, top, left + size, top + size)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(left + size // 2, top), (left, top + size), (left + size, top + size)], fill=fill)
    return image


def shapes_records(n: int, seed: int = 0) -> list[dict]:
    """`n` pictures as (file name, colour, shape, question) drawn from a seeded generator."""
    rng = random.Random(seed)
    return [
        {"file": f"images/{index:04d}.png", "colour": rng.choice(sorted(COLOURS)), "shape": rng.choice(SHAPES),
         "question": rng.choice(QUESTIONS), "seed": rng.randrange(1 << 30)}
        for index in range(n)
    ]  # fmt: skip


def _user(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


# A picture's records in each format, from (question, right caption, wrong caption, image files).
_SHAPE_RECORDS: dict[str, Callable[[str, str, str, list[str]], list[dict]]] = {
    "sharegpt": lambda question, answer, wrong, images: [
        {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}], "images": images}
    ],
    "messages": lambda question, answer, wrong, images: [
        {"messages": [*_user(question), {"role": "assistant", "content": answer}], "images": images}
    ],
    "preference": lambda question, answer, wrong, images: [
        {"messages": _user(question), "chosen": answer, "rejected": wrong, "images": images}
    ],
    "kto": lambda question, answer, wrong, images: [
        {"messages": _user(question), "completion": reply, "label": label, "images": images}
        for reply, label in ((answer, True), (wrong, False))
    ],
}


def write_shapes_dataset(folder: str | Path, n: int = 64, seed: int = 0, data_format: str = "sharegpt") -> Path:
    """Draw `n` pictures into `folder`/images and write the dataset beside them; returns the dataset file.

    Conversations (`data_format` "sharegpt" or "messages"): the question with an `<image>` placeholder, the caption
    as the reply. "preference": the right caption chosen, the same shape in another colour rejected, so a policy can
    only prefer the chosen one by looking at the image. "kto": the same replies unpaired, two records a picture, the
    right caption desirable and the wrong colour not.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1)  # its own stream: the wrong colours drawn do not shift the pictures
    records = []
    for item in shapes_records(n, seed):
        draw_shape(item["colour"], item["shape"], seed=item["seed"]).save(folder / item["file"])
        wrong = rng.choice([colour for colour in sorted(COLOURS) if colour != item["colour"]])
        records += _SHAPE_RECORDS[data_format](
            f"{IMAGE}{item['question']}",
            caption(item["colour"], item["shape"]),
            caption(wrong, item["shape"]),
            [item["file"]],
        )
    path = folder / f"{data_format}.json"
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return path


def _tokenizer_lines(seed: int) -> list[str]:
    lines = []
    for item in shapes_records(500, seed):
        lines += [f"USER: {item['question']} ASSISTANT: ", f"user\n{item['question']}", "assistant\n"]
        lines += [caption(colour, shape) for colour in COLOURS for shape in SHAPES]
    return lines + ["system\nYou are a helpful assistant."]


def _tokenizer(seed: int, tokens: dict[str, str | None], template: str, vocab_size: int):
    named = {key: value for key, value in tokens.items() if value is not None}
    specials = list(dict.fromkeys(named.values()))
    standard = {key: named.pop(key) for key in ("bos_token", "eos_token", "pad_token") if key in named}
    # The image and vision markers are named through extra_special_tokens, so the processor finds them as
    # `tokenizer.image_token` and the ids agree with the model config's.
    tokenizer = train_tiny_tokenizer(
        _tokenizer_lines(seed), specials, vocab_size, **standard, extra_special_tokens=named
    )
    tokenizer.chat_template = TEMPLATES[template].jinja()
    return tokenizer


def _text_config(tokenizer, hidden_size: int, num_layers: int) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        # Wider than the usual 0.02, as in the text tiny model: with LoRA the head stays frozen, and a narrow
        # random head would keep the logits near uniform.
        "initializer_range": 0.1,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def build_tiny_llava(folder: str | Path, seed: int = 0, vocab_size: int = 384, hidden_size: int = 64) -> Path:
    """A LlavaForConditionalGeneration (CLIP tower on 28 px images in 7 px patches: 16 image tokens; Llama with
    2 layers) with its LlavaProcessor and the llava chat template, saved into `folder`; returns it."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    folder = Path(folder)
    tokenizer = _tokenizer(seed, _LLAVA_TOKENS, "llava", vocab_size)
    side, patch = 28, 7
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=side,
        patch_size=patch, projection_dim=32,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(**_text_config(tokenizer, hidden_size, 2)),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy drops again
        chat_template=tokenizer.chat_template,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_qwen2_vl(folder: str | Path, seed: int = 0, vocab_size: int = 384, hidden_size: int = 64) -> Path:
    """A Qwen2VLForConditionalGeneration (a 2-block tower in 14 px patches merged 2 x 2; a 2-layer Qwen2) with its
    Qwen2VLProcessor and the qwen2_vl chat template, saved into `folder`; returns it."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from ftc.runtime.model.processor import save_processor_parts

    folder = Path(folder)
    tokenizer = _tokenizer(seed, _QWEN2_VL_TOKENS, "qwen2_vl", vocab_size)
    text = _text_config(tokenizer, hidden_size, 2)
    head_half = hidden_size // text["num_attention_heads"] // 2
    # Rotary frequencies split among time, height and width; the three parts fill half a head.
    sections = [head_half - 2 * (head_half // 3), head_half // 3, head_half // 3]
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": sections, "rope_theta": 10000.0}
    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in _QWEN2_VL_TOKENS.items() if token}
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": hidden_size,
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },  # fmt: skip
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"],
        vision_end_token_id=ids["vision_end_token"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 28 * 28, "longest_edge": IMAGE_SIDE * IMAGE_SIDE}, patch_size=14, merge_size=2
    )
    model.save_pretrained(folder)
    # Qwen2VLProcessor cannot be built without torchvision (its video part); its parts are saved instead.
    save_processor_parts(folder, "Qwen2VLProcessor", tokenizer, image_processor)
    return folder


def build_tiny_gemma3(folder: str | Path, seed: int = 0, vocab_size: int = 384, hidden_size: int = 64) -> Path:
    """A Gemma3ForConditionalGeneration (a 2-layer SigLIP tower on 28 px images in 7 px patches, whose 4 x 4
    patches are averaged 2 x 2 into 4 image tokens; a 2-layer Gemma 3 language model) with its Gemma3Processor
    and the gemma3 chat template, saved into `folder`; returns it."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    folder = Path(folder)
    tokenizer = _tokenizer(seed, _GEMMA3_TOKENS, "gemma3", vocab_size)
    side, patch, image_tokens = 28, 7, 4
    text = _text_config(tokenizer, hidden_size, 2)
    head_dim = hidden_size // text["num_attention_heads"]
    # Gemma 3's defaults are the published sizes (256-wide heads, scores scaled by 256, a 4096-token window):
    # at toy size the heads are the hidden size's share and one layer of the two slides over a short window.
    text |= {"head_dim": head_dim, "query_pre_attn_scalar": head_dim, "sliding_window": 16}
    text["layer_types"] = ["sliding_attention", "full_attention"]
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=side,
        patch_size=patch, vision_use_head=False,
    )  # fmt: skip
    ids = {key: tokenizer.convert_tokens_to_ids(_GEMMA3_TOKENS[key]) for key in ("boi_token", "eoi_token")}
    config = Gemma3Config(
        vision_config=vision,
        text_config=Gemma3TextConfig(**text),
        mm_tokens_per_image=image_tokens,
        boi_token_index=ids["boi_token"],
        eoi_token_index=ids["eoi_token"],
        image_token_index=tokenizer.convert_tokens_to_ids(_GEMMA3_TOKENS["image_token"]),
        initializer_range=text["initializer_range"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    image_processor = Gemma3ImageProcessorPil(size={"height": side, "width": side}, do_pan_and_scan=False)
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=image_tokens,
        chat_template=tokenizer.chat_template,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
