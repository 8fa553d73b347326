"""Image+text models in the plan: an image's tokens join every row, and the image side is a term of its own."""

from dataclasses import replace as changed

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.errors import FtcError
from ftc.spec import SpecError, parse_spec
from ftc.stages import STAGES
from tests.specs import VALID, replace

GIB = 1024**3
A100 = parse_hardware("1xA100-80GB")
BF16 = 2


def spec_for(model: str, data: str = "", extra: str = "", micro: int = 2, method: str = "lora"):
    text = replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", model)
    text = replace(text, 'method = "lora"', f'method = "{method}"')
    text = replace(text, 'template = "llama3"', 'template = "qwen"')
    text = replace(text, "cutoff_len = 1024", "cutoff_len = 1024\n" + data)
    text = replace(text, "global_batch_size = 16", f"global_batch_size = 16\nmicro_batch_size = {micro}")
    return parse_spec(text + extra, "job.toml")


def plan_for(model: str, data: str = "", extra: str = "", arch=None):
    spec = spec_for(model, data, extra)
    return compile_plan(spec, A100, arch or find_architecture(model))


def test_qwen2_vl_7b_adds_the_largest_images_tokens_to_every_row():
    plan = plan_for("Qwen/Qwen2-VL-7B-Instruct", "image_max_pixels = 1003520")
    # 1003520 px = 28² × 1280: 1280 tokens after the 2 × 2 merge, 5120 patches of 14 px in the tower
    note = next(note for note in plan.notes if note.startswith("images:"))
    assert "1003520 / 28² = 1280 image tokens" in note and "5120 patches" in note
    assert "1024 + 1280 = 2304 tokens" in note
    # the language model's terms are those of text rows of 2304 tokens
    arch = find_architecture("Qwen/Qwen2-VL-7B-Instruct")
    text_only = compile_plan(
        spec_for("Qwen/Qwen2-VL-7B-Instruct").model_copy(
            update={"data": spec_for("Qwen/Qwen2-VL-7B-Instruct").data.model_copy(update={"cutoff_len": 2304})}
        ),
        A100,
        changed(arch, vision=None),
    )
    assert plan.micro_batch_size.value == text_only.micro_batch_size.value == 2
    for term in ("activations", "logits"):
        assert plan.memory.terms[term] == pytest.approx(text_only.memory.terms[term])
    # the frozen tower saves nothing; the projector trains (the default) and saves its input, 5120 patches of
    # 1280, and its middle layer of 4 × 1280 before and after the GELU for each of 1280 tokens, per row
    saved = 5120 * 1280 + 2 * 1280 * 5120
    assert plan.memory.terms["vision_activations"] * GIB == pytest.approx(2 * saved * BF16)
    # the tower and the merger are weights too (675.8M beside the 7.6B language model), held in bf16
    assert plan.memory.terms["weights"] > text_only.memory.terms["weights"]


def test_the_processors_bound_applies_when_the_spec_sets_none():
    note = next(note for note in plan_for("Qwen/Qwen2-VL-7B-Instruct").notes if note.startswith("images:"))
    assert "12845056 px (the processor's max_pixels)" in note and "16384 image tokens" in note


def test_llava_1_5_7b_with_its_tower_training_saves_every_tower_block():
    plan = plan_for("llava-hf/llava-1.5-7b-hf", extra="\n[vision]\nfreeze_tower = false\n")
    note = next(note for note in plan.notes if note.startswith("images:"))
    assert "336 × 336 px: 576 patches of 14 px, 576 image tokens" in note and "1024 + 576 = 1600" in note
    assert any(note.startswith("vision: the vision tower, the projector trains") for note in plan.notes)
    tower_tokens, h, mlp = 577, 1024, 4096  # 576 patches and CLIP's class token; ViT-L/14
    per_block = tower_tokens * (5 * h + mlp) + 2 * tower_tokens * h
    projector = tower_tokens * h + 2 * 576 * 4096
    assert plan.memory.terms["vision_activations"] * GIB == pytest.approx(2 * (24 * per_block + projector) * BF16)


def test_gemma_3_4b_adds_256_averaged_tokens_and_their_markers_to_every_row():
    plan = plan_for("google/gemma-3-4b-it", "image_max_pixels = 100000")
    note = next(note for note in plan.notes if note.startswith("images:"))
    assert "896 × 896 px: 4096 patches of 14 px, averaged 4 × 4 into 256 image tokens and 3 marker tokens" in note
    assert "(data.image_max_pixels does not change it)" in note and "1024 + 259 = 1283 tokens" in note
    # the frozen SigLIP tower saves nothing; the projector (trained by default) saves the 256 pooled tokens and
    # their RMS-normed copy, 1152 wide, for each of the 2 rows of a micro-batch
    assert plan.memory.terms["vision_activations"] * GIB == pytest.approx(2 * (2 * 256 * 1152) * BF16)
    text_only = compile_plan(
        spec_for("google/gemma-3-4b-it").model_copy(
            update={"data": spec_for("google/gemma-3-4b-it").data.model_copy(update={"cutoff_len": 1283})}
        ),
        A100,
        changed(find_architecture("google/gemma-3-4b-it"), vision=None),
    )
    for term in ("activations", "logits"):
        assert plan.memory.terms[term] == pytest.approx(text_only.memory.terms[term])


def test_llava_ignores_the_pixel_bounds_and_says_so():
    note = next(
        n for n in plan_for("llava-hf/llava-1.5-7b-hf", "image_max_pixels = 100000").notes if n.startswith("images:")
    )
    assert "576 image tokens (data.image_max_pixels does not change it)" in note


def plan_full(model: str, extra: str = ""):
    spec = spec_for(model, "image_max_pixels = 1003520", extra=extra, method="full")
    return compile_plan(spec, A100, find_architecture(model))


def test_projector_only_trains_and_saves_the_projector_alone():
    frozen = plan_for("llava-hf/llava-1.5-7b-hf", extra="\n[vision]\nfreeze_projector = true\n")
    assert frozen.memory.terms["vision_activations"] == 0
    only = plan_full("llava-hf/llava-1.5-7b-hf", extra="\n[vision]\nprojector_only = true\n")
    assert only.memory.terms["vision_activations"] * GIB == pytest.approx(2 * (577 * 1024 + 2 * 576 * 4096) * BF16)
    projector = 1024 * 4096 + 4096 + 4096 * 4096 + 4096  # 20_979_712: two biased linears, CLIP's 1024 → 4096
    assert only.memory.terms["optimizer"] * GIB == pytest.approx(projector * 2 * 4)  # AdamW's two fp32 moments


def test_under_lora_the_projector_trains_whole_beside_the_adapter():
    trained = plan_for("Qwen/Qwen2-VL-7B-Instruct", "image_max_pixels = 1003520")
    frozen = plan_for(
        "Qwen/Qwen2-VL-7B-Instruct", "image_max_pixels = 1003520", "\n[vision]\nfreeze_projector = true\n"
    )
    merger = 2 * 1280 + 5120 * 5120 + 5120 + 5120 * 3584 + 3584  # 44_575_744
    assert (trained.memory.terms["gradients"] - frozen.memory.terms["gradients"]) * GIB == pytest.approx(merger * 4)
    assert (trained.memory.terms["optimizer"] - frozen.memory.terms["optimizer"]) * GIB == pytest.approx(merger * 8)


def test_full_keeps_the_frozen_tower_out_of_the_optimizer():
    default = plan_full("Qwen/Qwen2-VL-2B-Instruct").memory.terms
    tower = plan_full("Qwen/Qwen2-VL-2B-Instruct", "\n[vision]\nfreeze_tower = false\n").memory.terms
    tower_parameters = 631_183_360  # the 32-block ViT of Qwen2-VL (test_vision_shapes counts it against transformers)
    assert (tower["optimizer"] - default["optimizer"]) * GIB == pytest.approx(tower_parameters * 2 * 4)


def test_image_keys_on_a_text_model_are_refused_by_name():
    with pytest.raises(FtcError, match=r"data.image_max_pixels is set, but .* has no vision tower"):
        plan_for("meta-llama/Meta-Llama-3-8B-Instruct", "image_max_pixels = 1003520")
    with pytest.raises(FtcError, match=r"\[vision\] is set"):
        plan_for("meta-llama/Meta-Llama-3-8B-Instruct", extra="\n[vision]\nfreeze_tower = false\n")


def test_a_max_pixels_below_one_token_is_refused():
    with pytest.raises(FtcError, match="below one image token") as caught:
        plan_for("Qwen/Qwen2.5-VL-7B-Instruct", "image_max_pixels = 700")
    assert "at least 784" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("[data]\nimage_min_pixels = 5000\nimage_max_pixels = 4000", "data.image_min_pixels", "is above"),
        ("[vision]\nprojector_only = true\nfreeze_projector = true", "vision.freeze_projector", "freeze_projector"),
        ("[vision]\nprojector_only = true\nfreeze_tower = false", "vision.freeze_tower", "freeze_tower = false"),
        ("[vision]\nprojector_only = true", "vision.projector_only", "train.method = 'lora' trains"),
    ],
)
def test_contradicting_image_keys_are_located(text, path, words):
    section, *keys = text.split("\n")
    spec_text = VALID + f"\n{section}\n" + "\n".join(keys) + "\n" if section == "[vision]" else None
    if spec_text is None:
        spec_text = replace(VALID, "cutoff_len = 1024", "cutoff_len = 1024\n" + "\n".join(keys))
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_text, "job.toml")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.path, diagnostic.code) == (path, "E-CONFLICT") and words in diagnostic.message


def test_packing_image_rows_is_refused_with_the_reason():
    with pytest.raises(FtcError, match=r"data.packing = true, but .* is an image\+text model") as caught:
        plan_for("Qwen/Qwen2-VL-7B-Instruct", "packing = true")
    assert "set data.packing = false" in caught.value.hint
    assert plan_for("Qwen/Qwen2-VL-7B-Instruct").notes  # unpacked, it plans


def as_stage(spec, stage: str):
    return spec.model_copy(update={"train": spec.train.model_copy(update={"stage": stage})})


def test_dpo_counts_each_replys_row_with_its_image_and_a_whole_reference_under_full():
    model, bound = "Qwen/Qwen2-VL-2B-Instruct", "image_max_pixels = 1003520"
    arch = find_architecture(model)
    sft, dpo = (compile_plan(as_stage(spec_for(model, bound, method="full"), s), A100, arch) for s in ("sft", "dpo"))
    assert sft.micro_batch_size.value == dpo.micro_batch_size.value == 2
    # the chosen and the rejected row each hold the prompt's image: the tower's side is held for twice the rows
    assert dpo.memory.terms["vision_activations"] == pytest.approx(2 * sft.memory.terms["vision_activations"])
    assert any("a pair is two such rows" in note for note in dpo.notes)
    # the frozen reference is the whole image+text model in bf16: 2,208,985,600 parameters, tower and merger included
    assert dpo.memory.terms["reference_model"] * GIB == pytest.approx(2_208_985_600 * BF16)
    lora = compile_plan(as_stage(spec_for(model, bound), "dpo"), A100, arch)
    assert lora.memory.terms["reference_model"] == 0  # the adapter is switched off instead


def test_kto_counts_one_row_per_example_and_says_its_kl_row_passes_the_tower_without_gradients():
    """trl's KL forward runs under no_grad before the loss's forward: it holds nothing the backward needs."""
    model, bound = "Qwen/Qwen2-VL-2B-Instruct", "image_max_pixels = 1003520"
    arch = find_architecture(model)
    sft, kto = (compile_plan(as_stage(spec_for(model, bound), s), A100, arch) for s in ("sft", "kto"))
    assert sft.micro_batch_size.value == kto.micro_batch_size.value == 2
    assert kto.memory.terms["vision_activations"] == pytest.approx(sft.memory.terms["vision_activations"])
    assert kto.memory.terms["activations"] == pytest.approx(sft.memory.terms["activations"])
    (note,) = [note for note in kto.notes if note.startswith("images: ")]
    assert "each example's KL row (its prompt and images with another example's reply) passes the tower" in note
    assert "without gradients" in note and "a pair is two" not in note
    assert not any("KL row" in note for note in sft.notes)


@pytest.mark.parametrize("stage", [name for name, record in STAGES.items() if not record.takes_images])
def test_a_stage_that_cannot_take_images_is_refused_for_an_image_text_model_with_its_reason(stage):
    spec = as_stage(spec_for("llava-hf/llava-1.5-7b-hf"), stage)
    with pytest.raises(FtcError) as caught:
        compile_plan(spec, A100, find_architecture("llava-hf/llava-1.5-7b-hf"))
    message = caught.value.message
    assert message.startswith(f"train.stage = {stage!r} cannot train an image+text model")
    assert STAGES[stage].no_images_why in message
    assert "train.stage = 'sft' or 'dpo' or 'kto'" in caught.value.hint
    # the same stage plans a text-only model as before
    text = "meta-llama/Meta-Llama-3-8B-Instruct"
    assert compile_plan(as_stage(spec_for(text), stage), A100, find_architecture(text)).fits


def test_the_stages_that_take_images_are_sft_dpo_and_kto_and_every_other_says_why_not():
    assert [name for name, record in STAGES.items() if record.takes_images] == ["sft", "dpo", "kto"]
    assert all(record.no_images_why for record in STAGES.values() if not record.takes_images)
