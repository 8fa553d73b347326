"""ftc export and ftc chat on an image+text run: the LoRA merged into the language model, the tower and the
projector kept, the processor beside them; chat --image answers about a picture.

The run folder is written here as a LoRA run of a tiny LLaVA or Gemma 3 stores it (the adapter, the projector
trained whole beside it, and the processor with the run's template), with a known update in it, so that the
merge is checked against the arithmetic rather than against itself.
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple

import pytest

from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny_vision import build_tiny_gemma3, build_tiny_llava, draw_shape, write_shapes_dataset
from ftc.runs.folder import load_run_folder
from ftc.runtime.chat import chat, load_chat_model, respond
from ftc.runtime.export import export
from tests.commands import ftc
from tests.tiny_runs import QUICK, tiny_spec

torch = pytest.importorskip("torch")
RANK, ALPHA = 4, 8
LAYER0_Q = "model.language_model.layers.0.self_attn.q_proj"
QUESTION = "What is in the picture?"


class Tiny(NamedTuple):
    build: Any
    processor: str  # the processor's class, as AutoProcessor loads the export
    user_turn: str  # how the run's chat template opens a user turn
    image_tokens: int  # the tokens one 56 px picture fills in the prompt


MODELS = {
    # 28 px in 7 px patches: 16 patch tokens
    "llava": Tiny(build_tiny_llava, "LlavaProcessor", "USER: ", 16),
    # the same 16 patches averaged 2 x 2 into 4 soft tokens
    "gemma3": Tiny(build_tiny_gemma3, "Gemma3Processor", "<start_of_turn>user", 4),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def vision_run(request, tmp_path_factory, run_folder):
    """A LoRA run folder of a tiny image+text model: the adapter on the language model's q and v projections,
    with random (nonzero) B matrices, and the projector trained whole (modules_to_save), moved off the base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from ftc.runtime.data.tokenize import use_template
    from ftc.runtime.model.processor import load_processor, save_processor

    template, tiny = request.param, MODELS[request.param]
    root = tmp_path_factory.mktemp(f"vision-export-{template}")
    model_dir = tiny.build(root / "model")
    data = write_shapes_dataset(root / "data", n=4)
    spec = tiny_spec(root / "run", model_dir, data, "sharegpt", preset=QUICK)
    spec["model"]["template"] = template
    spec["lora"] = {"rank": RANK, "alpha": ALPHA, "target": ["q_proj", "v_proj"]}
    folder = load_run_folder(run_folder(spec))

    torch.manual_seed(1)
    base = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        target_modules=r"model\.language_model\..*\.(q_proj|v_proj)",
        modules_to_save=["multi_modal_projector"],
    )
    adapted = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
            if "modules_to_save" in name:
                param.add_(0.25)
    adapted.save_pretrained(folder.trained)
    processor = load_processor(str(model_dir))
    use_template(processor.tokenizer, template)
    save_processor(processor, folder.trained)
    picture = root / "red_square.png"
    draw_shape("red", "square").save(picture)
    return folder, model_dir, picture, tiny


def state(model) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_the_export_merges_the_lora_into_the_language_model_and_keeps_the_tower(vision_run):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder, model_dir, _, tiny = vision_run
    merged_dir = export(folder.path, dtype="fp32")
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    merged = state(AutoModelForImageTextToText.from_pretrained(merged_dir, dtype=torch.float32))
    base = state(AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32))
    assert set(merged) == set(base)  # a plain model: no lora_ or modules_to_save names left

    adapter = load_file(str(folder.trained / "adapter_model.safetensors"))
    lora = {name.split(".lora_")[1].split(".")[0]: tensor for name, tensor in adapter.items() if LAYER0_Q in name}
    delta = (ALPHA / RANK) * lora["B"] @ lora["A"]
    assert delta.abs().max() > 1e-3
    torch.testing.assert_close(merged[f"{LAYER0_Q}.weight"], base[f"{LAYER0_Q}.weight"] + delta)
    tower = [name for name in base if name.startswith("model.vision_tower.")]
    assert tower and all(torch.equal(merged[name], base[name]) for name in tower)
    projector = [name for name in base if name.startswith("model.multi_modal_projector.")]
    assert all(torch.allclose(merged[name], base[name] + 0.25) for name in projector)  # the trained copy
    untouched = "model.language_model.layers.0.self_attn.k_proj.weight"
    assert torch.equal(merged[untouched], base[untouched])

    processor = AutoProcessor.from_pretrained(merged_dir)  # no torchvision here: the Pillow image processor
    assert type(processor).__name__ == tiny.processor and tiny.user_turn in processor.tokenizer.chat_template


def test_the_export_loads_and_generates_about_an_image(vision_run):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder, _, picture, _ = vision_run
    merged_dir = export(folder.path, output=folder.path / "for-generation", dtype="fp32")
    model = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()
    processor = AutoProcessor.from_pretrained(merged_dir)
    loaded = load_chat_model(merged_dir)
    assert loaded.processor is not None
    from PIL import Image

    messages = [{"role": "user", "content": f"<image>{QUESTION}"}]
    reply = respond(model, processor.tokenizer, messages, 6, 0.0, processor, [Image.open(picture).convert("RGB")])
    assert reply and reply == respond(
        loaded.model, loaded.tokenizer, messages, 6, 0.0, loaded.processor, [Image.open(picture).convert("RGB")]
    )


def test_chat_with_an_image_answers_the_same_twice_and_puts_the_image_in_the_first_turn(vision_run):
    from ftc.runtime import chat as chat_module

    folder, _, picture, tiny = vision_run
    seen = []
    real = chat_module._with_images

    def recording(processor, tokenizer, messages, images):
        encoded = real(processor, tokenizer, messages, images)
        image_tokens = torch.isin(encoded["input_ids"], torch.tensor(processor.image_token_ids))
        seen.append((messages[0]["content"], int(image_tokens.sum())))
        # a processor that marks image tokens by type marks exactly these (Gemma 3 attends both ways among them)
        assert "token_type_ids" not in encoded or torch.equal(encoded["token_type_ids"] == 1, image_tokens)
        return encoded

    replies = []
    for _ in range(2):
        out = io.StringIO()
        chat_module._with_images = recording
        try:
            chat(str(folder.path), max_new_tokens=6, lines=[QUESTION, "/exit"], out=out, image=picture)
        finally:
            chat_module._with_images = real
        replies.append(out.getvalue().split("assistant> ", 1)[1].strip())
    assert replies[0] and replies[0] == replies[1]  # greedy: deterministic, and something was said
    # the placeholder opens the first user turn, and the picture's tokens are in the prompt
    assert seen[0] == (f"<image>{QUESTION}", tiny.image_tokens)


def test_a_missing_image_is_a_located_error_without_a_traceback(vision_run, tmp_path):
    folder, _, _, _ = vision_run
    with pytest.raises(RuntimeUserError, match="does not exist"):
        chat(str(folder.path), lines=[QUESTION], out=io.StringIO(), image=tmp_path / "nope.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(RuntimeUserError, match="not an image format Pillow reads"):
        chat(str(folder.path), lines=[QUESTION], out=io.StringIO(), image=tmp_path / "notes.png")
    result = ftc("chat", str(folder.path), "--image", str(tmp_path / "nope.png"), cwd=tmp_path)
    assert result.returncode != 0 and "--image" in result.stderr and "nope.png does not exist" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_an_image_for_a_text_model_is_refused(tiny_model_dir, vision_run):
    _, _, picture, _ = vision_run
    with pytest.raises(RuntimeUserError, match="text-only model"):
        chat(str(tiny_model_dir), lines=[QUESTION], out=io.StringIO(), image=picture)


def test_a_checkpoint_exports_with_the_processor_the_run_made(vision_run):
    import shutil

    from ftc.runtime.export import run_processor

    folder, _, _, tiny = vision_run
    checkpoint = folder.checkpoints / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    for file in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(folder.trained / file, checkpoint / file)
    processor = run_processor(folder, checkpoint)
    assert tiny.user_turn in processor.tokenizer.chat_template  # the run's template, set over the base's
    out = export(folder.path, output=folder.path / "from-checkpoint", checkpoint="checkpoint-1", dtype="fp32")
    assert (out / "processor_config.json").is_file() and tiny.user_turn in (out / "chat_template.jinja").read_text()
