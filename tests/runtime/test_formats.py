"""Each data format: what a good record becomes, and what a bad one is told, in the file's own column names."""

from __future__ import annotations

import json

import pytest

from ftc.records.formats import FORMATS, BadRecord, formats_of
from ftc.spec.models import FORMAT_FIELDS


def parse(format_name, record, columns=None):
    return FORMATS[format_name].parse(record, columns or {})


def test_every_spec_format_has_a_reader_of_the_right_kind():
    assert set(FORMATS) == set(FORMAT_FIELDS)
    assert formats_of("conversation") == ["alpaca", "sharegpt", "messages"]
    assert [formats_of(kind) for kind in ("preference", "kto", "text")] == [["preference"], ["kto"], ["text"]]


# --- sharegpt -------------------------------------------------------------------------------------


def test_sharegpt_speakers_become_roles_and_a_top_level_system_comes_first():
    record = {
        "system": "Be brief.",
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": "Paris"}})},
            {"from": "observation", "value": "18 C"},
            {"from": "gpt", "value": "18 degrees."},
        ],
    }
    assert parse("sharegpt", record).messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "18 C"},
        {"role": "assistant", "content": "18 degrees."},
    ]


@pytest.mark.parametrize(
    ("conversations", "complaint"),
    [
        ([{"from": "robot", "value": "x"}], "'conversations' turn 0 is from 'robot'; speakers are system, human"),
        ([{"from": "human", "value": "hi"}, {"from": "gpt"}], "'conversations' turn 1 must be an object"),
        ([{"from": "human", "value": "hi"}], "'conversations' has no assistant turn"),
        ([{"from": "function_call", "value": "not json"}], "turn 0: a function_call's value must be JSON"),
        ([], "must be a non-empty list"),
    ],
)
def test_sharegpt_bad_turns_are_named(conversations, complaint):
    with pytest.raises(BadRecord) as caught:
        parse("sharegpt", {"conversations": conversations})
    assert complaint in str(caught.value)


# --- messages (OpenAI) ----------------------------------------------------------------------------


def test_openai_messages_keep_system_tool_calls_and_tool_results():
    messages = [
        {"role": "system", "content": "You call tools."},
        {"role": "user", "content": [{"type": "text", "text": "Add "}, {"type": "text", "text": "2 and 3"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "5"},
        {"role": "assistant", "content": "5"},
    ]
    parsed = parse("messages", {"messages": messages}).messages
    assert parsed[1] == {"role": "user", "content": "Add 2 and 3"}
    assert parsed[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2}}, "id": "c1"}],
    }
    assert parsed[3] == {"role": "tool", "content": "5", "tool_call_id": "c1"}


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        ([{"role": "bot", "content": "x"}], "'messages' message 0 has role 'bot'"),
        ([{"role": "user", "content": 3}], "'messages' message 0 needs a string 'content'"),
        ([{"role": "user", "content": "hi"}], "no assistant turn"),
        (
            [{"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]}],
            "tool call 0 needs a 'function' with a string 'name'",
        ),
        (
            [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}],
            "'arguments' is not valid JSON",
        ),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}], "only text is supported"),
        ("hello", "must be a non-empty list of messages"),
    ],
)
def test_bad_messages_are_named(messages, complaint):
    with pytest.raises(BadRecord) as caught:
        parse("messages", {"messages": messages})
    assert complaint in str(caught.value)


# --- preference -----------------------------------------------------------------------------------


def test_preference_in_alpaca_shape():
    record = {"system": "S", "instruction": "Add.", "input": "1 + 1", "chosen": "2", "rejected": "3"}
    prompt, chosen, rejected, _ = parse("preference", record)
    assert prompt == [{"role": "system", "content": "S"}, {"role": "user", "content": "Add.\n\n1 + 1"}]
    assert (chosen, rejected) == ("2", "3")


@pytest.mark.parametrize(
    "reply",
    [
        lambda text: text,
        lambda text: {"role": "assistant", "content": text},
        lambda text: [{"role": "assistant", "content": text}],
    ],
    ids=["text", "message", "list of one message"],
)
def test_preference_in_messages_shape_takes_replies_as_text_or_assistant_messages(reply):
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    record = {
        "messages": conversation + [{"role": "user", "content": "Bye"}],
        "chosen": reply("Bye!"),
        "rejected": reply("No."),
    }
    prompt, chosen, rejected, _ = parse("preference", record)
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"]
    assert (chosen, rejected) == ("Bye!", "No.")


def test_preference_as_two_whole_conversations_shares_all_but_the_last_reply():
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    record = {
        "chosen": prompt + [{"role": "assistant", "content": "good"}],
        "rejected": prompt + [{"role": "assistant", "content": "bad"}],
    }
    assert parse("preference", record) == (prompt, "good", "bad", ())
    record["rejected"] = [{"role": "user", "content": "other"}, {"role": "assistant", "content": "bad"}]
    with pytest.raises(BadRecord, match="differ before their last turn"):
        parse("preference", record)


def test_a_plain_prompt_is_one_user_turn():
    assert parse("preference", {"prompt": "Q?", "chosen": "A", "rejected": "B"})[0] == [
        {"role": "user", "content": "Q?"}
    ]


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"chosen": "a", "rejected": "b"}, "no prompt: give one of 'messages', 'prompt', 'instruction'"),
        ({"prompt": "Q", "chosen": "a"}, "missing 'rejected'"),
        ({"prompt": "Q", "chosen": "a", "rejected": "a"}, "are the same reply"),
        ({"prompt": "Q", "chosen": {"role": "user", "content": "a"}, "rejected": "b"}, "'chosen' must be an assistant"),
        ({"prompt": "Q", "chosen": 1, "rejected": "b"}, "'chosen' must be a string or one assistant message"),
        (
            {
                "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                "chosen": "a",
                "rejected": "b",
            },
            "the prompt must end with a user turn",
        ),
    ],
)
def test_bad_preference_records(record, complaint):
    with pytest.raises(BadRecord) as caught:
        parse("preference", record)
    assert complaint in str(caught.value)


# --- kto and text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "desirable"), [(True, True), (False, False), ("true", True), ("False", False), ("1", True)]
)
def test_kto_label_is_a_boolean_or_how_a_csv_spells_one(label, desirable):
    prompt, completion, parsed_label, images = parse("kto", {"prompt": "Q", "completion": "A", "label": label})
    assert (prompt, completion, parsed_label, images) == ([{"role": "user", "content": "Q"}], "A", desirable, ())


@pytest.mark.parametrize(
    ("label", "complaint"),
    [
        ("maybe", "'label' must be true or false, found 'maybe'"),
        (2, "must be true or false"),
        (None, "missing 'label'"),
    ],
)
def test_kto_label_must_be_true_or_false(label, complaint):
    with pytest.raises(BadRecord) as caught:
        parse("kto", {"prompt": "Q", "completion": "A", "label": label})
    assert complaint in str(caught.value)


def test_text_records_and_an_empty_one():
    assert parse("text", {"text": "Once upon a time."}) == "Once upon a time."
    with pytest.raises(BadRecord, match="'text' is empty"):
        parse("text", {"text": "  \n"})


# --- column mapping -------------------------------------------------------------------------------


def test_columns_map_our_fields_to_the_files_names_and_errors_use_the_files_names():
    columns = {"instruction": "question", "output": "answer"}
    record = {"question": "Q?", "answer": "A.", "instruction": "ignored: mapped away"}
    assert parse("alpaca", record, columns).messages == [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
    ]
    with pytest.raises(BadRecord, match="missing 'answer'"):
        parse("alpaca", {"question": "Q?", "output": "not the mapped column"}, columns)
    with pytest.raises(BadRecord, match="'conv' must be a non-empty list"):
        parse("sharegpt", {"conv": "x"}, {"conversations": "conv"})
    assert parse("text", {"body": "b"}, {"text": "body"}) == "b"


# --- tool turns meet the chat templates -----------------------------------------------------------

TOOL_CONVERSATION = [
    {"role": "user", "content": "Add 2 and 3."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}],
    },
    {"role": "tool", "content": "5"},
    {"role": "assistant", "content": "It is 5."},
]


def test_a_registry_template_refuses_tool_turns_by_name():
    from ftc.spec.chat_templates import TEMPLATES, ChatTemplateError

    with pytest.raises(ChatTemplateError, match="message 1 is a tool call or a tool result, and the llama3 template"):
        TEMPLATES["llama3"].segments(TOOL_CONVERSATION)


def test_a_tokenizer_template_that_knows_tools_trains_on_the_tool_call_and_the_answer():
    from ftc.quickstart.tiny import build_tiny_tokenizer
    from ftc.runtime.data.tokenize import auto_segments

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{% if m.tool_calls %}{{ m.tool_calls[0].function | tojson }}"
        "{% else %}{{ m.content }}{% endif %}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    segments = auto_segments(tokenizer, TOOL_CONVERSATION)
    trained = [segment.text for segment in segments if segment.trainable]
    assert trained == ['{"name": "add", "arguments": {"a": 2, "b": 3}}<|end|>', "It is 5.<|end|>"]
    assert "<|tool|>5<|end|>" in "".join(segment.text for segment in segments if not segment.trainable)


def test_tool_definitions_come_as_a_list_or_as_json_text_and_are_wrapped_as_functions():
    weather = {"name": "weather", "description": "Weather in a city", "parameters": {"type": "object"}}
    conversation = [{"role": "user", "content": "Paris?"}, {"role": "assistant", "content": "Sunny."}]
    listed = parse("messages", {"messages": conversation, "tools": [weather]})
    assert listed.tools == [{"type": "function", "function": weather}]
    sharegpt = {"conversations": [{"from": "human", "value": "Paris?"}, {"from": "gpt", "value": "Sunny."}]}
    assert parse("sharegpt", {**sharegpt, "tools": json.dumps([weather])}).tools == listed.tools
    assert parse("sharegpt", sharegpt).tools is None
    with pytest.raises(BadRecord, match="'tools' tool 0 needs a string 'name'"):
        parse("messages", {"messages": conversation, "tools": [{"description": "nameless"}]})


def test_tool_definitions_reach_a_tokenizer_template_and_a_registry_template_refuses_them():
    from ftc.quickstart.tiny import build_tiny_tokenizer
    from ftc.runtime.data.tokenize import conversation_segments
    from ftc.spec.chat_templates import ChatTemplateError

    tools = [{"type": "function", "function": {"name": "add"}}]
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = (
        "{% if tools %}<|tools|>{% for t in tools %}{{ t.function.name }}{% endfor %}<|end|>{% endif %}"
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    conversation = [{"role": "user", "content": "Add."}, {"role": "assistant", "content": "Done."}]
    segments = conversation_segments(tokenizer, "auto", conversation, tools)
    assert segments[0].text.startswith("<|tools|>add<|end|>") and not segments[0].trainable
    with pytest.raises(ChatTemplateError, match="defines tools, and the llama3 template has no place for them"):
        conversation_segments(tokenizer, "llama3", conversation, tools)
