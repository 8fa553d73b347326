"""`ftc chat RUN_DIR`: talk to the trained model, to see what training did. Offline; the CPU is enough.

The conversation is formatted with the run's own tokenizer, which carries the chat template it was
trained with. `/reset` starts over, `/exit` (or end of input) leaves.

With `--image`, an image+text model sees the image in the first user turn of each conversation, where its
records put it in training: an <image> placeholder that the run's template writes as the model's image text,
expanded to the image's tokens by the model's processor, which also makes its pixels.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ftc.errors import RuntimeUserError
from ftc.runs.folder import load_run_folder
from ftc.runtime.export import has_images, load_trained, run_processor, trained_folder
from ftc.spec.chat_templates import IMAGE
from ftc.stages import STAGES

_POLICY = "use a policy run (or model) instead"
HELP = "type a message; /reset starts over, /exit leaves"


def chat(
    run_dir: str,
    checkpoint: str | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    lines: Iterable[str] | None = None,
    out: TextIO = sys.stdout,
    image: str | Path | None = None,
) -> int:
    picture = read_image(image) if image is not None else None  # a bad path is said before the model loads
    loaded = load_chat_model(run_dir, checkpoint)
    if picture is not None and loaded.processor is None:
        raise RuntimeUserError(
            f"--image {image}: {loaded.source} is a text-only model", "drop --image, or chat with an image+text run"
        )
    model, tokenizer = loaded.model, loaded.tokenizer
    about = f", the image {image} in the first turn" if picture is not None else ""
    print(f"chatting with {loaded.source} ({HELP}{about})", file=out, flush=True)
    messages: list[dict[str, str]] = []
    for line in lines if lines is not None else _prompts():
        text = line.strip()
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            messages = []
            print("(new conversation)", file=out, flush=True)
            continue
        if not text:
            continue
        if picture is not None and not messages:
            text = IMAGE + text
        messages.append({"role": "user", "content": text})
        images = [picture] if picture is not None else None
        reply = respond(model, tokenizer, messages, max_new_tokens, temperature, loaded.processor, images)
        messages.append({"role": "assistant", "content": reply})
        print(f"assistant> {reply}", file=out, flush=True)
    return 0


@dataclass(frozen=True)
class ChatModel:
    model: Any  # in eval mode
    tokenizer: Any  # carries the chat template the run trained with
    source: Path  # the adapter, model or checkpoint folder it was loaded from
    name: str  # what a server calls it: the run folder's (or model folder's) name
    processor: Any = None  # an image+text model's (its tokenizer is `tokenizer`); None for a text model


def read_image(path: str | Path) -> Any:
    """The image `--image` names, as RGB pixels; a path Pillow cannot read is the user's to fix."""
    from ftc.records.images import image_problem

    path = Path(path).expanduser()
    problem = image_problem(path)
    if problem:
        raise RuntimeUserError(f"--image {path} {problem}", "give the path of an image file (PNG, JPEG, WebP …)")
    from PIL import Image

    with Image.open(path) as opened:
        return opened.convert("RGB")


def load_chat_model(path: str | Path, checkpoint: str | None = None, merge: bool = True) -> ChatModel:
    """A run folder's trained model (or a model folder, e.g. an export) with its tokenizer, for `ftc chat` and
    `ftc serve`. merge=False keeps a LoRA adapter on its base, unmerged."""
    from transformers import AutoTokenizer

    from ftc.runtime.model.processor import load_processor

    path = Path(path)
    processor = None
    if not (path / "spec.toml").is_file() and (path / "config.json").is_file():
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

        source = path.resolve()
        architectures = json.loads((source / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        if any("SequenceClassification" in name for name in architectures):
            raise RuntimeUserError(f"{source} holds a reward model: it scores text and writes none", _POLICY)
        if has_images(source):
            model, processor = AutoModelForImageTextToText.from_pretrained(source), load_processor(str(source))
        else:
            model = AutoModelForCausalLM.from_pretrained(source)
    else:
        folder = load_run_folder(path)
        if STAGES[folder.spec.train.stage].score_head:
            raise RuntimeUserError("a reward model scores text; it does not write any", _POLICY)
        source = trained_folder(folder, checkpoint)
        model = load_trained(folder, source, merge=merge)
        processor = run_processor(folder, source) if has_images(folder) else None
    tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        raise RuntimeUserError(f"the tokenizer in {source} has no chat template", "set model.template and retrain")
    return ChatModel(model.eval(), tokenizer, source, path.resolve().name, processor)


def respond(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]],
    max_new_tokens: int,
    temperature: float,
    processor: Any = None,
    images: list[Any] | None = None,
) -> str:
    import torch

    if images:
        encoded = _with_images(processor, tokenizer, messages, images)
    else:
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with torch.no_grad():
        generated = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            **sampling,
        )
    return tokenizer.decode(generated[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def _with_images(processor: Any, tokenizer: Any, messages: list[dict[str, str]], images: list[Any]) -> Any:
    """The prompt as training encoded it: the template's text, then the processor over it and the images (it
    expands each image's text to the image's tokens); the template wrote the special tokens already."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if processor.image_token not in prompt:  # a model's own template ("auto") that leaves our placeholder as is
        prompt = prompt.replace(IMAGE, processor.image_token)
    return processor(text=[prompt], images=images, return_tensors="pt", add_special_tokens=False)


def _prompts() -> Iterable[str]:
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return
