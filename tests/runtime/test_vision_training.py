"""Image+text models trained on the CPU: tiny LLaVA and Qwen2-VL built from code, the shapes dataset's pictures.

The loss falls, and what changed is what the method and [vision] say: the vision tower never unless
freeze_tower = false, the projector unless frozen, with projector_only nothing but the projector. The label
mask is read off a real collated batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ftc.quickstart.tiny_vision import build_tiny_llava, build_tiny_qwen2_vl, write_shapes_dataset
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

BUILDERS = {"llava": build_tiny_llava, "qwen2_vl": build_tiny_qwen2_vl}


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
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def changed(before: dict, after: dict) -> set[str]:
    import torch

    return {name for name in before if not torch.equal(before[name], after[name])}


def part(name: str, template: str) -> str:
    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.model.vision import part_of

    return part_of(name, FAMILIES[template].vision)


def test_the_label_mask_of_a_collated_batch(vision_models, shapes):
    """Prompt and image tokens are -100, every reply token is learned, and the pixels come with their tokens."""
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
        images = ids == processor.image_token_id
        assert images.sum(dim=1).min() > 0 and (labels[images] == -100).all()
        for row, conversation in enumerate(conversations):
            learned = processor.tokenizer.decode(labels[row][labels[row] != -100])
            assert learned == conversation.messages[-1]["content"] + FAMILIES_END[template]
            prompt = ids[row][(labels[row] == -100) & (batch["attention_mask"][row] == 1)]
            assert "What" in processor.tokenizer.decode(prompt) or "Describe" in processor.tokenizer.decode(prompt)
        assert batch["pixel_values"].shape[0] > 0
        if FAMILIES[template].vision.pixel_bounds:  # Qwen2-VL: a grid per image, a token type per token
            assert batch["image_grid_thw"].shape == (3, 3)
            assert (batch["mm_token_type_ids"] == 1).sum() == images.sum()


FAMILIES_END = {"llava": "</s>", "qwen2_vl": "<|im_end|>"}


@pytest.mark.slow
@pytest.mark.parametrize("template", ["llava", "qwen2_vl"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_sft_trains_the_language_model_and_leaves_the_tower(
    template, method, vision_models, shapes, tmp_path, run_folder, train_in_process
):
    spec = vision_spec(tmp_path / "run", vision_models[template], shapes, template, method=method, max_steps=10)
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    loss = series(metrics, "loss")
    assert loss[-1] < loss[0] * 0.8
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
    assert (trained / "preprocessor_config.json").is_file()  # the processor is saved with the result


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
    spec = Spec.model_validate(
        {**tiny_spec(Path("run"), Path("m"), Path("d.json"), "sharegpt"), "vision": {"freeze_tower": False}}
    )
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
