"""Where the rollout stages' rewards come from: built-in reward functions, or a reward model.

The built-in functions score a reply's text from 0 to 1, from the spec's [ppo] settings alone, so
grpo can run without a reward model. A reward model is a folder written by the rm stage (`model/`,
or `adapter/` on its base) or a hub id: a sequence classifier with one output, read on the prompt
and reply as its own tokenizer's chat template renders them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.spec.chat_templates import Message
from ftc.spec.models import ModelSection, PpoSection


@dataclass(frozen=True)
class RewardFunctionEntry:
    name: str  # as written in ppo.reward_functions
    score: Callable[[str, PpoSection], float]  # (reply, settings) → 0..1
    summary: str


def _length(reply: str, ppo: PpoSection) -> float:
    words = len(reply.split())
    return max(0.0, 1.0 - abs(words - ppo.target_words) / ppo.target_words)


def _format(reply: str, ppo: PpoSection) -> float:
    pattern = ppo.reply_pattern or ""  # the spec requires a pattern with this function
    return 1.0 if re.fullmatch(pattern, reply.strip(), flags=re.DOTALL) else 0.0


def _distinct(reply: str, ppo: PpoSection) -> float:
    words = reply.split()
    return len(set(words)) / len(words) if words else 0.0


def _build_registry(*entries: RewardFunctionEntry) -> dict[str, RewardFunctionEntry]:
    return {entry.name: entry for entry in entries}


REWARD_FUNCTIONS: dict[str, RewardFunctionEntry] = _build_registry(
    RewardFunctionEntry("length", _length, "1 at ppo.target_words words, falling linearly to 0 at none or twice that"),
    RewardFunctionEntry("format", _format, "1 when the whole reply matches ppo.reply_pattern, else 0"),
    RewardFunctionEntry("distinct", _distinct, "the share of the reply's words that are distinct; 0 when empty"),
)


def reply_text(completion: str | list[Message]) -> str:
    """trl hands conversational completions as a list of messages; the reply is the last one's text."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def trl_reward_function(name: str, ppo: PpoSection) -> Callable[..., list[float]]:
    """A built-in function in trl's shape: (prompts, completions, ...) → one float per completion."""
    entry = REWARD_FUNCTIONS[name]

    def reward(prompts: list[Any], completions: list[Any], **ignored: Any) -> list[float]:
        return [entry.score(reply_text(completion), ppo) for completion in completions]

    reward.__name__ = name  # trl logs each function's mean under its name
    return reward


def load_reward_model(name_or_path: str, plan: Plan) -> tuple[Any, Any]:
    """(model, tokenizer) of the reward model, frozen, in the plan's compute dtype and attention kernel; an rm
    adapter merged in. Its repository's own code never runs: the spec trusts model.name_or_path's alone."""
    from transformers import AutoTokenizer

    from ftc.runtime.model.loading import load_score_model
    from ftc.runtime.model.precision import compute_dtype

    if Path(name_or_path).is_absolute() and not Path(name_or_path).is_dir():
        raise RuntimeUserError(
            f"ppo.reward_model: folder {name_or_path} not found",
            "give the model/ or adapter/ folder of a train.stage = 'rm' run, or a hub id",
        )
    adapter_config = Path(name_or_path) / "adapter_config.json"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if adapter_config.is_file():
            from peft import PeftModel

            adapter = json.loads(adapter_config.read_text(encoding="utf-8"))
            base = ModelSection(name_or_path=adapter["base_model_name_or_path"], revision=adapter.get("revision"))
            model = load_score_model(base, plan, compute_dtype(plan))
            model = PeftModel.from_pretrained(model, name_or_path).merge_and_unload()
        else:
            model = load_score_model(ModelSection(name_or_path=name_or_path), plan, compute_dtype(plan))
    except (OSError, KeyError, ValueError) as error:
        raise RuntimeUserError(
            f"ppo.reward_model: could not load {name_or_path!r} as a reward model: {error}",
            "give the model/ or adapter/ folder of a train.stage = 'rm' run, or a hub id of a sequence classifier",
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise RuntimeUserError(
            f"ppo.reward_model: the tokenizer of {name_or_path!r} has no chat template to render prompt and reply with",
            "use a reward model trained by ftc (its folder carries the template) or one whose tokenizer has one",
        )
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last token before the padding
    return model.eval().requires_grad_(False), tokenizer


def score_replies(model: Any, tokenizer: Any, prompts: list[list[Message]], replies: list[str]) -> Any:
    """The reward model's score of each (prompt, reply), as a float tensor on the model's device."""
    import torch

    texts = [
        tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": reply}], tokenize=False)
        for prompt, reply in zip(prompts, replies, strict=True)
    ]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    with torch.no_grad():
        return model(**inputs.to(model.device)).logits[:, 0].float()
