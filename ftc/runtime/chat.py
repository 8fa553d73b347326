"""`ftc chat RUN_DIR`: talk to the trained model, to see what training did. Offline; the CPU is enough.

The conversation is formatted with the run's own tokenizer, which carries the chat template it was
trained with. `/reset` starts over, `/exit` (or end of input) leaves.
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
from ftc.runtime.export import load_trained, trained_folder
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
) -> int:
    loaded = load_chat_model(run_dir, checkpoint)
    model, tokenizer = loaded.model, loaded.tokenizer
    print(f"chatting with {loaded.source} ({HELP})", file=out, flush=True)
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
        messages.append({"role": "user", "content": text})
        reply = respond(model, tokenizer, messages, max_new_tokens, temperature)
        messages.append({"role": "assistant", "content": reply})
        print(f"assistant> {reply}", file=out, flush=True)
    return 0


@dataclass(frozen=True)
class ChatModel:
    model: Any  # in eval mode
    tokenizer: Any  # carries the chat template the run trained with
    source: Path  # the adapter, model or checkpoint folder it was loaded from
    name: str  # what a server calls it: the run folder's (or model folder's) name


def load_chat_model(path: str | Path, checkpoint: str | None = None, merge: bool = True) -> ChatModel:
    """A run folder's trained model (or a model folder, e.g. an export) with its tokenizer, for `ftc chat` and
    `ftc serve`. merge=False keeps a LoRA adapter on its base, unmerged."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "spec.toml").is_file() and (path / "config.json").is_file():
        from transformers import AutoModelForCausalLM

        source = path.resolve()
        architectures = json.loads((source / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        if any("SequenceClassification" in name for name in architectures):
            raise RuntimeUserError(f"{source} holds a reward model: it scores text and writes none", _POLICY)
        model = AutoModelForCausalLM.from_pretrained(source)
    else:
        folder = load_run_folder(path)
        if STAGES[folder.spec.train.stage].score_head:
            raise RuntimeUserError("a reward model scores text; it does not write any", _POLICY)
        source = trained_folder(folder, checkpoint)
        model = load_trained(folder, source, merge=merge)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        raise RuntimeUserError(f"the tokenizer in {source} has no chat template", "set model.template and retrain")
    return ChatModel(model.eval(), tokenizer, source, path.resolve().name)


def respond(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int, temperature: float) -> str:
    import torch

    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with torch.no_grad():
        generated = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            **sampling,
        )
    return tokenizer.decode(generated[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def _prompts() -> Iterable[str]:
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return
