"""Conversation → input_ids + labels: the loss falls only on the text the template marks trainable.

Each segment is encoded on its own (no special tokens added) and the pieces are concatenated, so
a token never straddles prompt and reply and the mask is exact. With `template = "auto"` the
tokenizer's own chat template is rendered prefix by prefix and the reply is what each assistant
message adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftc.errors import RuntimeUserError
from ftc.runtime.data.batch_encode import encode_batch, in_chunks, overlapped
from ftc.runtime.data.loading import Conversation
from ftc.runtime.data.token_rows import IGNORE_INDEX, TOKEN, TokenRows, offsets_of, spans
from ftc.spec.chat_templates import TEMPLATES, ChatTemplateError, Message, Segment

_NAME_A_TEMPLATE = f"set model.template to one of: {', '.join(TEMPLATES)}"


@dataclass(frozen=True)
class EncodedData:
    rows: TokenRows  # input_ids and labels of each example
    truncated: int  # kept, but cut at cutoff_len
    dropped: int  # left out: no reply token within cutoff_len

    @property
    def examples(self) -> list[dict[str, list[int]]]:
        return self.rows.rows()


def use_template(tokenizer: Any, template_name: str) -> None:
    """Give the tokenizer the template we train with, so the saved tokenizer prompts the same way."""
    if template_name == "auto":
        if not tokenizer.chat_template:
            raise RuntimeUserError("template is 'auto' but the tokenizer has no chat template", _NAME_A_TEMPLATE)
        return
    if template_name not in TEMPLATES:
        raise RuntimeUserError(f"unknown chat template {template_name!r}", _NAME_A_TEMPLATE)
    template = TEMPLATES[template_name]
    tokenizer.chat_template = template.jinja()
    if template.tools is not None:  # saved with the tokenizer, so a served model reads its tool calls back
        tokenizer.response_template = template.tools.response_template


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
    """One conversation's segments as input_ids and labels (the reply tokens only), uncut."""
    rows = encode_segment_lists(tokenizer, [segments], cutoff_len=None).rows
    return rows.rows()[0] if len(rows) else {"input_ids": [], "labels": []}


@dataclass(frozen=True)
class _Cut:
    rows: TokenRows
    kept: np.ndarray  # index of each row's conversation
    truncated: int
    dropped: int


def encode_segment_lists(tokenizer: Any, conversations: list[list[Segment]], cutoff_len: int | None) -> _Cut:
    """Every conversation's segments encoded in one batch; rows cut at cutoff_len, those left without a
    reply token dropped. Each segment is encoded on its own, as `encode_segments` always has."""
    texts = [segment.text for segments in conversations for segment in segments]
    trainable = np.fromiter(
        (segment.trainable for segments in conversations for segment in segments), dtype=bool, count=len(texts)
    )
    per_conversation = np.fromiter(map(len, conversations), dtype=np.int64, count=len(conversations))
    ids, segment_lengths = encode_batch(tokenizer, texts)
    labels = np.where(np.repeat(trainable, segment_lengths), ids, IGNORE_INDEX).astype(TOKEN)
    # A conversation's length is the sum of its segments' lengths.
    segment_ends = offsets_of(segment_lengths)[offsets_of(per_conversation)]
    lengths = np.diff(segment_ends)
    limit = lengths if cutoff_len is None else np.minimum(lengths, cutoff_len)
    keep = spans(segment_ends[:-1], limit)
    # Reply tokens within the cut, per conversation, from a running count (empty conversations count 0).
    running = offsets_of(labels[keep] != IGNORE_INDEX)[offsets_of(limit)]
    kept = np.flatnonzero(np.diff(running) > 0)
    positions = spans(segment_ends[:-1][kept], limit[kept])
    rows = TokenRows(ids[positions], labels[positions], offsets_of(limit[kept]))
    truncated = int((lengths[kept] > limit[kept]).sum())
    return _Cut(rows, kept, truncated, len(conversations) - len(kept))


def encode_conversations(
    tokenizer: Any, conversations: Sequence[Conversation], template_name: str, cutoff_len: int
) -> EncodedData:
    """Every conversation encoded, a chunk of them per call to the tokenizer."""
    cuts = list(
        overlapped(
            in_chunks(conversations, "conversations"),
            render=lambda chunk: [conversation_segments_of(tokenizer, record, template_name) for record in chunk],
            encode=lambda segments: encode_segment_lists(tokenizer, segments, cutoff_len),
        )
    )
    rows = TokenRows.concat([cut.rows for cut in cuts])
    if not len(rows):
        raise RuntimeUserError(
            f"no example has a reply within data.cutoff_len = {cutoff_len} tokens", "raise data.cutoff_len"
        )
    return EncodedData(rows, sum(cut.truncated for cut in cuts), sum(cut.dropped for cut in cuts))


def conversation_segments_of(tokenizer: Any, conversation: Conversation, template_name: str) -> list[Segment]:
    """The conversation's segments, or a user error naming its record."""
    try:
        return conversation_segments(tokenizer, template_name, conversation.messages, conversation.tools)
    except ChatTemplateError as error:
        raise RuntimeUserError(
            f"{conversation.where}: {error}",
            f"fix the record, or set model.template to one that fits it (auto, {', '.join(TEMPLATES)})",
        ) from None


def describe_data(data: EncodedData, tokenizer: Any, template_name: str) -> str:
    """One line on what training will see, plus a warning when the template's end marker is no token here."""
    lengths = data.rows.lengths
    line = (
        f"data: {len(lengths)} examples, {lengths.mean():.0f} tokens on average "
        f"(longest {lengths.max()}; {data.truncated} truncated, {data.dropped} dropped), template {template_name}"
    )
    marker = untokenized_end_marker(tokenizer, template_name)
    if marker is not None:
        line += f"\nwarning: {marker!r} is not a single token for this tokenizer; the model learns it as plain text"
    return line
