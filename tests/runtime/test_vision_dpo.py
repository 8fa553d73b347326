"""DPO on image+text models, on the CPU: tiny LLaVA, Qwen2-VL and Gemma 3 prefer the caption whose colour is in
the picture.

The shapes dataset's pairs differ only in the colour named, so the margin can only rise through the image.
The margin rises (LoRA on all three, full on LLaVA and Qwen2-VL), the vision tower stays as it was, and a real
collated pair batch masks the prompt and its image tokens in the chosen and the rejected rows alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ftc.quickstart.tiny_vision import write_shapes_dataset
from tests.runtime.test_vision_training import FAMILIES_END, changed, part, vision_models, weights
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

__all__ = ["vision_models"]  # the fixture, shared with the SFT tests


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("pairs"), n=32, data_format="preference")


def dpo_spec(run_dir: Path, model_dir: Path, data: Path, template: str, method: str, steps: int) -> dict:
    spec = tiny_spec(run_dir, model_dir, data, "preference", preset=QUICK, stage="dpo", method=method, max_steps=steps)
    spec["model"]["template"] = template
    return spec


def rising(margins: list[float]) -> bool:
    """The last steps' margin is well above the first steps' (single steps are noisy at 4 pairs a micro-batch)."""
    early, late = sum(margins[:3]) / 3, sum(margins[-3:]) / 3
    return margins[0] == pytest.approx(0.0, abs=1e-6) and late > early + 0.2


def test_a_collated_pair_batch_masks_the_prompt_and_its_image_tokens_in_both_rows(vision_models, pairs):
    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.data.images import ImageCollator, PairImageCollator, image_pair_rows, image_rows
    from ftc.runtime.data.loading import Conversation, load_preferences
    from ftc.runtime.model.processor import load_processor
    from ftc.spec.models import DataSection

    data = DataSection.model_validate({"datasets": [{"path": str(pairs), "format": "preference"}]})
    loaded = load_preferences(data)[:3]
    for template, folder in vision_models.items():
        processor = load_processor(str(folder))
        tokenizer = processor.tokenizer
        batch = PairImageCollator(processor, cutoff_len=128)(image_pair_rows(tokenizer, loaded, template))
        ids, learned, attention = batch["input_ids"], batch["completion_mask"], batch["attention_mask"]
        assert ids.shape[0] == 6 and "labels" not in batch  # trl makes its labels from completion_mask
        images = ids == processor.image_token_id
        assert (images.sum(dim=1) > 0).all() and (learned[images] == 0).all()
        for index, pair in enumerate(loaded):
            chosen, rejected = index, index + len(loaded)  # trl's halves: every chosen row, then every rejected one
            for row, reply in ((chosen, pair.chosen), (rejected, pair.rejected)):
                assert tokenizer.decode(ids[row][learned[row] == 1]) == reply + FAMILIES_END[template]
            prompt = [ids[row][(learned[row] == 0) & (attention[row] == 1)] for row in (chosen, rejected)]
            assert prompt[0].tolist() == prompt[1].tolist()  # the same prompt, image tokens and all, in both
            assert images[chosen].sum() == images[rejected].sum() > 0
        # each row brings its image's pixels, exactly as SFT's collator encodes the prompt + reply conversation
        one = ImageCollator(processor, cutoff_len=128)(
            image_rows(
                tokenizer,
                [Conversation(p.where, [*p.prompt, {"role": "assistant", "content": p.chosen}], images=p.images)
                 for p in loaded],
                template,
            )
        )  # fmt: skip
        assert one["input_ids"].tolist() == ids[:3, : one["input_ids"].shape[1]].tolist()
        assert batch["pixel_values"].shape[0] == 2 * one["pixel_values"].shape[0]
        if FAMILIES[template].vision.pixel_bounds:  # Qwen2-VL: a grid per row's image, a token type per token
            assert batch["image_grid_thw"].shape == (6, 3)
            assert (batch["mm_token_type_ids"] == 1).sum() == images.sum()


@pytest.mark.slow
@pytest.mark.parametrize("template", ["llava", "qwen2_vl", "gemma3"])
def test_dpo_lora_raises_the_margin_with_the_adapter_on_the_language_model(
    template, vision_models, pairs, tmp_path, run_folder, train_in_process
):
    from safetensors.torch import load_file

    spec = dpo_spec(tmp_path / "run", vision_models[template], pairs, template, "lora", steps=10)
    metrics = train_in_process(run_folder(spec, cpu_plan(loss_head="fused")))
    margins = series(metrics, "reward_margin")
    assert len(margins) == 10 and rising(margins), margins
    saved = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    lora = {name for name in saved if "lora_" in name}
    assert lora and all(".language_model." in name for name in lora)  # none on the tower or the projector
    whole = {name for name in saved if "lora_" not in name}
    assert whole and all(part(name.replace("base_model.model.", ""), template) == "projector" for name in whole)
    assert (tmp_path / "run" / "adapter" / "processor_config.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("template", ["llava", "qwen2_vl"])
def test_dpo_full_raises_the_margin_and_leaves_the_tower(
    template, vision_models, pairs, tmp_path, run_folder, train_in_process
):
    """The reference is a frozen copy of the whole image+text model, given the same pixels."""
    spec = dpo_spec(tmp_path / "run", vision_models[template], pairs, template, "full", steps=10)
    metrics = train_in_process(run_folder(spec, cpu_plan(loss_head="fused")))
    margins = series(metrics, "reward_margin")
    assert len(margins) == 10 and rising(margins), margins
    before, after = weights(vision_models[template]), weights(tmp_path / "run" / "model")
    assert {part(name, template) for name in changed(before, after)} == {"language_model", "projector"}
