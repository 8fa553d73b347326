"""`ftc chat RUN_DIR`: talk to the trained model, to see what training did. Offline; the CPU is enough.

The conversation is formatted with the run's own tokenizer, which carries the chat template it was
trained with. `/reset` starts over, `/exit` (or end of input) leaves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from ftc.errors import RuntimeUserError
from ftc.runs.folder import load_run_folder
from ftc.runtime.export import load_trained, trained_folder
from ftc.stages import STAGES

HELP = "type a message; /reset starts over, /exit leaves"


def chat(
    run_dir: str,
    checkpoint: str | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    lines: Iterable[str] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    folder = load_run_folder(run_dir)
    if STAGES[folder.spec.train.stage].score_head:
        raise RuntimeUserError("a reward model scores text; it does not write any", "chat with a policy run instead")
    from transformers import AutoTokenizer

    trained = trained_folder(folder, checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    if not tokenizer.chat_template:
        raise RuntimeUserError(f"the tokenizer in {trained} has no chat template", "set model.template and retrain")
    model = load_trained(folder, trained).eval()
    print(f"chatting with {trained} ({HELP})", file=out, flush=True)
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
