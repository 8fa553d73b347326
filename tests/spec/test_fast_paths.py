"""The quick paths that read and render the usual record give exactly what the full checks give.

Reading and rendering a large dataset goes through a quick path for the usual record (text turns in
order); anything else takes the full checks, which name what is wrong. Random records, well formed or
not, show that the quick path never answers differently from the checks.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftc.records.formats import (
    BadRecord,
    Record,
    checked_message,
    checked_sharegpt_turn,
    parse_messages,
    sharegpt_to_chat,
)
from ftc.spec.chat_templates import (
    TEMPLATES,
    ChatTemplateError,
    checked_split_system,
    render_segments,
    split_system,
    well_formed,
)

ROLES = st.sampled_from(["system", "user", "assistant", "tool", "bot", None])
CONTENT = st.one_of(st.text(max_size=8), st.none(), st.integers(), st.just([{"type": "text", "text": "hi"}]))
TOOL_CALLS = st.one_of(st.none(), st.just([]), st.just([{"function": {"name": "f", "arguments": "{}"}}]))


@st.composite
def message(draw: Any) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(st.one_of(st.text(max_size=3), st.integers(), st.none()))  # not an object at all
    raw = {"role": draw(ROLES), "content": draw(CONTENT), "tool_calls": draw(TOOL_CALLS)}
    if draw(st.booleans()):
        raw.update(tool_call_id="call-1", name="lookup")  # what a tool result names
    return {key: value for key, value in raw.items() if value is not None or draw(st.booleans())}


@st.composite
def conversation(draw: Any) -> list[Any]:
    """A well-formed conversation (an optional system message, then user and assistant in turn), often with
    one thing broken: a message replaced by a random one, or given tool calls."""
    turns = draw(st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3))
    messages: list[Any] = [
        {"role": role, "content": text}
        for pair in turns
        for role, text in zip(("user", "assistant"), pair, strict=True)
    ]
    system = draw(st.one_of(st.none(), st.text(max_size=5)))
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    if messages and draw(st.booleans()):
        index = draw(st.integers(0, len(messages) - 1))
        if draw(st.booleans()):
            messages[index] = draw(message())
        else:
            messages[index] = {**messages[index], "tool_calls": draw(TOOL_CALLS.filter(bool))}
    return messages


def outcome(function: Any, *arguments: Any) -> Any:
    try:
        return ("value", function(*arguments))
    except (BadRecord, ChatTemplateError) as error:
        return ("error", type(error), str(error))


@settings(max_examples=400, deadline=None)
@given(conversation(), st.sampled_from(sorted(TEMPLATES)))
def test_the_quick_split_answers_as_the_checked_one(messages, name):
    template = TEMPLATES[name]
    if all(isinstance(m, dict) for m in messages):
        assert outcome(split_system, template, messages) == outcome(checked_split_system, template, messages)
        if well_formed(template, messages):
            render_segments(template, messages)  # renders: every rule holds


@settings(max_examples=400, deadline=None)
@given(st.one_of(conversation().filter(bool), st.lists(message(), min_size=1, max_size=5)))
def test_messages_read_as_each_would_be_checked(value):
    expected = outcome(lambda: [checked_message(raw, f"'messages' message {i}") for i, raw in enumerate(value)])
    assert outcome(parse_messages, value, "messages") == expected


SPEAKERS = st.sampled_from(["human", "gpt", "system", "observation", "user", "function_call", "robot", None])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(st.fixed_dictionaries({"from": SPEAKERS, "value": CONTENT}), st.text(max_size=2)), min_size=1)
)
def test_sharegpt_turns_read_as_each_would_be_checked(turns):
    record = Record({"conversations": turns}, {})
    checked = outcome(lambda: [checked_sharegpt_turn(t, f"'conversations' turn {i}") for i, t in enumerate(turns)])
    got = outcome(lambda: sharegpt_to_chat(record).messages)
    if checked[0] == "error":
        assert got == checked
    elif got[0] == "value":  # the whole record may still be refused later (no reply), never read differently
        assert got[1] == checked[1]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_usual_conversation_takes_the_quick_path(name):
    template = TEMPLATES[name]
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert well_formed(template, messages)
    assert split_system(template, messages) == (template.default_system, messages)
