"""Conversation → input_ids + labels: the loss falls only on the text the template marks trainable.

Each segment is encoded on its own (no special tokens added) and the pieces are concatenated, so
a token never straddles prompt and reply and the mask is exact. With `template = "auto"` the
tokenizer's own chat template is rendered prefix by prefix and the reply is what each assistant
message adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import Conversation
from ftc.spec.chat_templates import TEMPLATES, ChatTemplateError, Message, Segment

IGNORE_INDEX = -100  # labels the loss skips (the HF convention)
_NAME_A_TEMPLATE = f"set model.template to one of: {', '.join(TEMPLATES)}"


@dataclass(frozen=True)
class EncodedData:
    examples: list[dict[str, list[int]]]  # {"input_ids": [...], "labels": [...]}
    truncated: int  # kept, but cut at cutoff_len
    dropped: int  # left out: no reply token within cutoff_len


def use_template(tokenizer: Any, template_name: str) -> None:
    """Give the tokenizer the template we train with, so the saved tokenizer prompts the same way."""
    if template_name == "auto":
        if not tokenizer.chat_template:
            raise RuntimeUserError("template is 'auto' but the tokenizer has no chat template", _NAME_A_TEMPLATE)
        return
    if template_name not in TEMPLATES:
        raise RuntimeUserError(f"unknown chat template {template_name!r}", _NAME_A_TEMPLATE)
    tokenizer.chat_template = TEMPLATES[template_name].jinja()


def untokenized_end_marker(tokenizer: Any, template_name: str) -> str | None:
    """The template's end marker if it is no single token here: the model then learns it as plain text."""
    if template_name == "auto":
        return None
    end = TEMPLATES[template_name].assistant_end.strip()
    return None if end in tokenizer.get_vocab() else end


def conversation_segments(
    tokenizer: Any, template_name: str, messages: list[Message], tools: list[dict] | None = None
) -> list[Segment]:
    if template_name == "auto":
        return auto_segments(tokenizer, messages, tools)
    if tools:
        raise ChatTemplateError(
            f"the conversation defines tools, and the {template_name} template has no place for them"
        )
    return TEMPLATES[template_name].segments(messages)


def auto_segments(tokenizer: Any, messages: list[Message], tools: list[dict] | None = None) -> list[Segment]:
    """Segments from the tokenizer's own template: the prompt before each reply, then the reply itself."""
    segments: list[Segment] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        with_reply = _render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        if not (prompt.startswith(rendered) and with_reply.startswith(prompt)):
            raise RuntimeUserError(
                "the tokenizer's chat template does not render conversations prefix by prefix, "
                "so the replies cannot be told apart from the prompt",
                _NAME_A_TEMPLATE,
            )
        segments += [Segment(prompt[len(rendered) :], False), Segment(with_reply[len(prompt) :], True)]
        rendered = with_reply
    return [segment for segment in segments if segment.text]


def _render(tokenizer: Any, messages: list[Message], tools: list[dict] | None, add_generation_prompt: bool) -> str:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as error:
        raise ChatTemplateError(f"the tokenizer's chat template refused the conversation: {error}") from None


def encode_segments(tokenizer: Any, segments: list[Segment]) -> dict[str, list[int]]:
    if not segments:  # a conversation without a reply; the tokenizer refuses an empty batch
        return {"input_ids": [], "labels": []}
    pieces = tokenizer([segment.text for segment in segments], add_special_tokens=False)["input_ids"]
    input_ids: list[int] = []
    labels: list[int] = []
    for segment, ids in zip(segments, pieces, strict=True):
        input_ids += ids
        labels += ids if segment.trainable else [IGNORE_INDEX] * len(ids)
    return {"input_ids": input_ids, "labels": labels}


def encode_conversation(
    tokenizer: Any, conversation: Conversation, template_name: str, cutoff_len: int
) -> tuple[dict[str, list[int]] | None, bool]:
    """(example cut at cutoff_len, whether it was cut); the example is None when no reply token is left."""
    try:
        segments = conversation_segments(tokenizer, template_name, conversation.messages, conversation.tools)
    except ChatTemplateError as error:
        raise RuntimeUserError(
            f"{conversation.where}: {error}",
            f"fix the record, or set model.template to one that fits it (auto, {', '.join(TEMPLATES)})",
        ) from None
    example = encode_segments(tokenizer, segments)
    too_long = len(example["input_ids"]) > cutoff_len
    example = {key: ids[:cutoff_len] for key, ids in example.items()}
    if all(label == IGNORE_INDEX for label in example["labels"]):
        return None, too_long
    return example, too_long


def encode_conversations(
    tokenizer: Any, conversations: list[Conversation], template_name: str, cutoff_len: int
) -> EncodedData:
    examples, truncated, dropped = [], 0, 0
    for conversation in conversations:
        example, too_long = encode_conversation(tokenizer, conversation, template_name, cutoff_len)
        if example is None:
            dropped += 1
        else:
            truncated += too_long
            examples.append(example)
    if not examples:
        raise RuntimeUserError(
            f"no example has a reply within data.cutoff_len = {cutoff_len} tokens", "raise data.cutoff_len"
        )
    return EncodedData(examples, truncated, dropped)


def describe_data(data: EncodedData, tokenizer: Any, template_name: str) -> str:
    """One line on what training will see, plus a warning when the template's end marker is no token here."""
    lengths = [len(example["input_ids"]) for example in data.examples]
    line = (
        f"data: {len(lengths)} examples, {sum(lengths) / len(lengths):.0f} tokens on average "
        f"(longest {max(lengths)}; {data.truncated} truncated, {data.dropped} dropped), template {template_name}"
    )
    marker = untokenized_end_marker(tokenizer, template_name)
    if marker is not None:
        line += f"\nwarning: {marker!r} is not a single token for this tokenizer; the model learns it as plain text"
    return line
