"""Image+text models trained on the CPU: tiny LLaVA, Qwen2-VL and Gemma 3 built from code, the shapes dataset's
pictures.

The loss falls, and what changed is what the method and [vision] say: the vision tower never unless
freeze_tower = false, the projector unless frozen, with projector_only nothing but the projector. The label
mask is read off a real collated batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftc.quickstart.tiny_vision import build_tiny_gemma3, build_tiny_llava, build_tiny_qwen2_vl, write_shapes_dataset
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

BUILDERS = {"llava": build_tiny_llava, "qwen2_vl": build_tiny_qwen2_vl, "gemma3": build_tiny_gemma3}


@pytest.fixture(scope="module")
def vision_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vision_models")
    return {template: build(root / template) for template, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=32)


def vision_spec(run_dir: Path, model_dir: Path, data: Path, template: str, **train) -> dict:
    spec = tiny_spec(run_dir, model_dir, data, "sharegpt", preset=QUICK, **train)
    spec["model"]["template"] = template
    return spec


def weights(folder: Path) -> dict:
    """Parameters by their module names (the file's keys follow transformers' older layout)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder)
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def changed(before: dict, after: dict) -> set[str]:
    import torch

    return {name for name in before if not torch.equal(before[name], after[name])}


def part(name: str, template: str) -> str:
    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.model.vision import part_of

    return part_of(name, FAMILIES[template].vision)


def test_the_label_mask_of_a_collated_batch(vision_models, shapes):
    """Prompt and image tokens are -100, every reply token is learned, and the pixels come with their tokens; where
    the processor marks image tokens by type (Qwen2-VL's mm_token_type_ids, Gemma 3's token_type_ids, which its
    language model reads for attention both ways within an image), the marks are exactly the image tokens."""
    import torch

    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.data.images import ImageCollator, image_rows
    from ftc.runtime.data.loading import load_conversations
    from ftc.runtime.model.processor import load_processor
    from ftc.spec.models import DataSection

    data = DataSection.model_validate({"datasets": [{"path": str(shapes), "format": "sharegpt"}]})
    conversations = load_conversations(data)[:3]
    for template, folder in vision_models.items():
        processor = load_processor(str(folder))
        collator = ImageCollator(processor, cutoff_len=128)
        batch = collator(image_rows(processor.tokenizer, conversations, template))
        ids, labels = batch["input_ids"], batch["labels"]
        images = torch.isin(ids, torch.tensor(processor.image_token_ids))
        assert images.sum(dim=1).min() > 0 and (labels[images] == -100).all()
        for row, conversation in enumerate(conversations):
            learned = processor.tokenizer.decode(labels[row][labels[row] != -100])
            assert learned == conversation.messages[-1]["content"] + FAMILIES_END[template]
            prompt = ids[row][(labels[row] == -100) & (batch["attention_mask"][row] == 1)]
            assert "What" in processor.tokenizer.decode(prompt) or "Describe" in processor.tokenizer.decode(prompt)
        assert batch["pixel_values"].shape[0] > 0
        if FAMILIES[template].vision.pixel_bounds:  # Qwen2-VL: a grid per image
            assert batch["image_grid_thw"].shape == (3, 3)
        types = TOKEN_TYPES[template]
        if types is not None:
            assert torch.equal(batch[types] == 1, images)
    gemma3 = load_processor(str(vision_models["gemma3"]))
    batch = ImageCollator(gemma3, cutoff_len=128)(image_rows(gemma3.tokenizer, conversations, "gemma3"))
    assert batch["pixel_values"].shape == (3, 3, 28, 28)
    # one image of 4 pooled tokens a row, after its start marker and before its end marker
    assert (batch["token_type_ids"] == 1).sum(dim=1).tolist() == [4, 4, 4]


FAMILIES_END = {"llava": "</s>", "qwen2_vl": "<|im_end|>", "gemma3": "<end_of_turn>"}
# The batch key under which each processor marks image tokens as type 1; None: it marks none.
TOKEN_TYPES = {"llava": None, "qwen2_vl": "mm_token_type_ids", "gemma3": "token_type_ids"}


def test_an_image_cut_by_cutoff_len_is_a_located_error(vision_models, shapes):
    """Gemma 3 writes an image as its start marker and expands it to soft tokens: a cut through the soft tokens
    after the marker is refused, not handed to the model with the image's features short."""
    from ftc.errors import RuntimeUserError
    from ftc.runtime.data.images import ImageCollator, image_rows
    from ftc.runtime.data.loading import load_conversations
    from ftc.runtime.model.processor import load_processor
    from ftc.spec.models import DataSection

    data = DataSection.model_validate({"datasets": [{"path": str(shapes), "format": "sharegpt"}]})
    conversation = load_conversations(data)[0]
    processor = load_processor(str(vision_models["gemma3"]))
    row = image_rows(processor.tokenizer, [conversation], "gemma3")[0]
    ids = ImageCollator(processor, cutoff_len=128).encode(row)["input_ids"]
    start = ids.index(processor.tokenizer.boi_token_id)
    with pytest.raises(RuntimeUserError, match="an image cannot be cut") as raised:
        ImageCollator(processor, cutoff_len=start + 3).encode(row)  # the marker and two of its four soft tokens
    assert row["where"] in str(raised.value)


# Where a language model reads the token types to attend both ways within an image: Gemma 3 groups the type-1
# tokens into blocks (each image's tokens numbered by image, the rest -1) only when token_type_ids reach it.
IMAGE_BLOCKS = {"gemma3": "transformers.models.gemma3.modeling_gemma3.get_block_sequence_ids_for_mask"}


def _record_image_blocks(template: str, monkeypatch) -> list | None:
    """The image blocks the model computes in each forward pass, recorded; None where the model has none."""
    if template not in IMAGE_BLOCKS:
        return None
    import importlib

    module_name, _, function = IMAGE_BLOCKS[template].rpartition(".")
    module, seen = importlib.import_module(module_name), []
    real = getattr(module, function)

    def recording(*args, **kwargs):
        blocks = real(*args, **kwargs)
        seen.append(blocks.detach().cpu())
        return blocks

    monkeypatch.setattr(module, function, recording)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("template", sorted(BUILDERS))
@pytest.mark.parametrize("method", ["lora", "full"])
def test_sft_trains_the_language_model_and_leaves_the_tower(
    template, method, vision_models, shapes, tmp_path, run_folder, train_in_process, monkeypatch
):
    image_blocks = _record_image_blocks(template, monkeypatch)
    spec = vision_spec(tmp_path / "run", vision_models[template], shapes, template, method=method, max_steps=10)
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    loss = series(metrics, "loss")
    assert loss[-1] < loss[0] * 0.8
    if image_blocks is not None:  # the training batches reached the model with their image tokens marked
        assert image_blocks and all((blocks >= 0).sum(dim=1).tolist() == [4] * len(blocks) for blocks in image_blocks)
    trained = tmp_path / "run" / ("model" if method == "full" else "adapter")
    if method == "full":
        parts = {part(name, template) for name in changed(weights(vision_models[template]), weights(trained))}
        assert parts == {"language_model", "projector"}  # the tower stays frozen by default
    else:
        from safetensors.torch import load_file

        saved = load_file(str(trained / "adapter_model.safetensors"))
        lora = {name for name in saved if "lora_" in name}
        assert lora and all(".language_model." in name for name in lora)  # no adapter on the tower or projector
        whole = {name for name in saved if "lora_" not in name}
        assert whole and all(part(name.replace("base_model.model.", ""), template) == "projector" for name in whole)
    assert (trained / "processor_config.json").is_file()  # the processor is saved with the result


@pytest.mark.slow
@pytest.mark.parametrize("template", ["llava", "qwen2_vl"])
def test_freeze_trains_the_language_models_last_block_and_the_projector(
    template, vision_models, shapes, tmp_path, run_folder, train_in_process
):
    """The freeze method counts blocks in the language model, never the tower's (both are stacks of layers)."""
    spec = vision_spec(tmp_path / "run", vision_models[template], shapes, template, method="freeze", max_steps=4)
    spec["freeze"] = {"trainable_layers": 1}
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    assert series(metrics, "loss")[-1] < series(metrics, "loss")[0]
    moved = changed(weights(vision_models[template]), weights(tmp_path / "run" / "model"))
    assert {part(name, template) for name in moved} == {"language_model", "projector"}
    blocks = {name.split(".layers.")[1].split(".")[0] for name in moved if part(name, template) == "language_model"}
    assert blocks == {"1"}  # the last of the tiny language model's two blocks


@pytest.mark.slow
def test_projector_only_changes_the_projector_alone(vision_models, shapes, tmp_path, run_folder, train_in_process):
    spec = vision_spec(tmp_path / "run", vision_models["llava"], shapes, "llava", method="full", max_steps=4)
    spec["vision"] = {"projector_only": True}
    train_in_process(run_folder(spec, cpu_plan()))
    before, after = weights(vision_models["llava"]), weights(tmp_path / "run" / "model")
    assert {part(name, "llava") for name in changed(before, after)} == {"projector"}


def test_an_unfrozen_tower_trains_whole_beside_the_adapter(vision_models):
    """freeze_tower = false with LoRA: the tower is saved whole with the adapter; the adapter stays off it."""
    from transformers import AutoModelForImageTextToText

    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.model.vision import adapter_scope
    from ftc.spec.models import Spec

    model = AutoModelForImageTextToText.from_pretrained(vision_models["qwen2_vl"])
    written = tiny_spec(Path("run"), Path("m"), Path("d.json"), "sharegpt")
    written["lora"]["target"] = ["q_proj", "v_proj", "qkv"]
    spec = Spec.model_validate({**written, "vision": {"freeze_tower": False}})
    scope = adapter_scope(model, spec, ["q_proj", "v_proj", "qkv"], FAMILIES["qwen2_vl"].vision)
    assert scope["modules_to_save"] == ["visual"]  # the merger trains inside it
    import re

    names = [name for name, _ in model.named_modules()]
    matched = {name for name in names if re.fullmatch(scope["target_modules"], name)}
    assert any(".language_model." in name and name.endswith("q_proj") for name in matched)
    assert {name for name in matched if name.startswith("model.visual")} == {
        name for name in names if name.startswith("model.visual") and name.endswith(".qkv")
    }  # named: the tower's qkv, which the language model has not


def test_qlora_keeps_the_tower_and_projector_unquantized(vision_models):
    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.model.vision import skipped_by_quantization

    assert skipped_by_quantization(FAMILIES["llava"].vision) == ["vision_tower", "multi_modal_projector", "lm_head"]
    assert skipped_by_quantization(FAMILIES["qwen2_vl"].vision) == ["visual", "merger", "lm_head"]
    assert skipped_by_quantization(FAMILIES["gemma3"].vision) == ["vision_tower", "multi_modal_projector", "lm_head"]


# Each template's first user turn with a system prompt and an image, as its model's processor reads it.
IMAGE_TURNS = {
    "llava": "<s>You answer briefly. USER: <image>What is it? ASSISTANT: ",
    "qwen2_vl": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is it?<|im_end|>\n",
    "gemma3": "<bos><start_of_turn>user\nYou answer briefly.\n\n<start_of_image>What is it?<end_of_turn>\n",
}


@pytest.mark.parametrize("template", sorted(BUILDERS))
def test_each_vision_template_writes_its_image_text_in_jinja_alike(template, vision_models):
    """The segments and the saved jinja agree, each <image> becoming the text the model's processor expands."""
    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.model.processor import load_processor
    from ftc.spec.chat_templates import TEMPLATES

    system = {"role": "system", "content": "You answer briefly."}
    turns = [{"role": "user", "content": "<image>What is it?"}, {"role": "assistant", "content": "A red circle."}]
    processor = load_processor(str(vision_models[template]))
    tokenizer = processor.tokenizer
    for messages in ([system, *turns], turns, turns[:1]):
        prompt = messages[-1]["role"] == "user"
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
        assert rendered == TEMPLATES[template].render(messages, add_generation_prompt=prompt)  # the segments, joined
    assert IMAGE_TURNS[template] in tokenizer.apply_chat_template([system, *turns], tokenize=False)
    assert TEMPLATES[template].image.count(processor.image_token) == 1  # one image, expanded once by the processor
    assert FAMILIES[template].vision.template == template  # the template ftc init --vision sets for the family


@pytest.mark.slow
def test_quickstart_vision_trains_a_tiny_llava_with_the_loss_falling(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "ftc", "quickstart", str(tmp_path / "qs"), "--vision", "--steps", "20"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "qs" / "runs" / "quickstart-vision"
    loss = series(json.loads((run / "metrics.json").read_text(encoding="utf-8")), "loss")
    assert loss[-1] < loss[0] * 0.5
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert 'template = "llava"' in (tmp_path / "qs" / "quickstart.toml").read_text(encoding="utf-8")
