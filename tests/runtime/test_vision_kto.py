"""KTO on image+text models, on the CPU: tiny LLaVA and Qwen2-VL learn that the caption whose colour is in the
picture is desirable and the one in another colour is not.

Each picture's two examples differ only in the colour named, so the rewards can only part through the image. The
KL and reward series are logged, the margin rises, nothing trains on the tower, and a real collated batch masks the
prompt and its image tokens in the examples' rows and their KL rows alike, each KL row holding its own prompt's
images with the reply of the example before it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ftc.quickstart.tiny_vision import write_shapes_dataset
from tests.runtime.test_vision_dpo import rising
from tests.runtime.test_vision_training import FAMILIES_END, part, vision_models
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

__all__ = ["vision_models"]  # the fixture, shared with the SFT tests


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("kto"), n=24, data_format="kto")


def test_the_shapes_kto_records_pair_each_picture_with_its_caption_and_a_wrong_colour(examples):
    import json

    records = json.loads(examples.read_text())
    assert len(records) == 48 and [record["label"] for record in records[:4]] == [True, False, True, False]
    right, wrong = records[0], records[1]
    assert right["images"] == wrong["images"] and right["messages"] == wrong["messages"]
    assert right["completion"].split()[2:] == wrong["completion"].split()[2:]  # the same shape...
    assert right["completion"] != wrong["completion"]  # ...in another colour


def test_a_collated_kto_batch_masks_the_prompt_and_its_image_tokens_and_its_kl_rows_keep_their_images(
    vision_models, examples
):
    from ftc.compiler.model_families import FAMILIES
    from ftc.runtime.data.images import KtoImageCollator, image_kto_rows
    from ftc.runtime.data.loading import load_kto_examples
    from ftc.runtime.model.processor import load_processor
    from ftc.spec.models import DataSection

    data = DataSection.model_validate({"datasets": [{"path": str(examples), "format": "kto"}]})
    # a picture's desirable example and the next picture's undesirable one: the KL rows cross pictures
    loaded = [load_kto_examples(data)[index] for index in (0, 3, 4)]
    assert [example.label for example in loaded] == [True, False, True]
    for template in ("llava", "qwen2_vl", "gemma3"):
        processor = load_processor(str(vision_models[template]))
        tokenizer = processor.tokenizer
        batch = KtoImageCollator(processor, cutoff_len=128)(image_kto_rows(tokenizer, loaded, template))
        assert "labels" not in batch and batch["label"].tolist() == [True, False, True]
        image_ids = list(processor.image_token_ids)
        for prefix in ("", "KL_"):
            ids, learned = batch[f"{prefix}input_ids"], batch[f"{prefix}completion_mask"]
            attention = batch[f"{prefix}attention_mask"]
            assert ids.shape[0] == 3
            images = ids == processor.image_token_id
            assert (images.sum(dim=1) > 0).all() and (learned[images] == 0).all()
            for row in range(len(loaded)):
                # the example's own reply, or (KL) the reply of the one before it, the first taking the last's
                reply = loaded[row if not prefix else row - 1].completion
                assert tokenizer.decode(ids[row][learned[row] == 1]) == reply + FAMILIES_END[template]
                prompt = ids[row][(learned[row] == 0) & (attention[row] == 1)]
                assert not set(prompt.tolist()).isdisjoint(image_ids)
            if FAMILIES[template].vision.pixel_bounds:  # Qwen2-VL: a token type per token, the image's marked
                assert (batch[f"{prefix}mm_token_type_ids"] == 1).sum() == images.sum()
        # the KL row's prompt is its own example's, image tokens and all, so the batch's pixels serve both passes
        for row in range(3):
            main = batch["input_ids"][row][(batch["completion_mask"][row] == 0) & (batch["attention_mask"][row] == 1)]
            kl = batch["KL_input_ids"][row][
                (batch["KL_completion_mask"][row] == 0) & (batch["KL_attention_mask"][row] == 1)
            ]
            assert main.tolist() == kl.tolist()
        if "token_type_ids" in batch:  # Gemma 3: its KL rows' own token types, of their own width
            assert batch["KL_token_type_ids"].shape == batch["KL_input_ids"].shape
            assert batch["KL_token_type_ids"].sum() == batch["token_type_ids"].sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("template", ["llava", "qwen2_vl"])
def test_kto_lora_parts_the_rewards_through_the_image_with_the_adapter_on_the_language_model(
    template, vision_models, examples, tmp_path, run_folder, train_in_process
):
    from safetensors.torch import load_file

    spec = tiny_spec(
        tmp_path / "run", vision_models[template], examples, "kto", preset=QUICK, stage="kto", method="lora",
        max_steps=16, sections={"preference": {"desirable_weight": 1.0, "undesirable_weight": 1.0}},
    )  # fmt: skip
    spec["model"]["template"] = template
    metrics = train_in_process(run_folder(spec, cpu_plan(loss_head="fused")))
    margins = series(metrics, "reward_margin")  # rewards/chosen − rewards/rejected, over a micro-batch
    assert len(margins) == 16 and rising(margins), margins
    assert (
        len(series(metrics, "kl")) == len(series(metrics, "reward_chosen")) == len(series(metrics, "reward_rejected"))
    )
    assert len(series(metrics, "kl")) == 16
    saved = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    lora = {name for name in saved if "lora_" in name}
    assert lora and all(".language_model." in name for name in lora)  # none on the tower or the projector
    whole = {name for name in saved if "lora_" not in name}
    assert whole and all(part(name.replace("base_model.model.", ""), template) == "projector" for name in whole)
