"""Tool calls through ftc serve on the qwen template (Hermes' format): the tools rendered into the prompt by the
template, the reply's calls read back into OpenAI's shape, plain and streamed, asked through OpenAI's client. The
tiny model's generation is replaced by a fixed reply: the parsing and the response shape are under test."""

from __future__ import annotations

import json
from contextlib import contextmanager

import openai
import pytest
from jinja2 import TemplateError

from ftc.serve.app import build_app
from ftc.serve.backends import Prompt, Sampling, Templating, TransformersBackend
from ftc.spec.chat_templates import TEMPLATES
from tests.serve.test_server import Running

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
ASKED = {"model": "qwen-tiny", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER]}


def template_tokenizer(folder, name: str):
    """The tiny tokenizer with a registry template, as training saves it (tokenize.use_template)."""
    from transformers import AutoTokenizer

    from ftc.runtime.data.tokenize import use_template

    tokenizer = AutoTokenizer.from_pretrained(folder)
    use_template(tokenizer, name)
    return tokenizer


def qwen_tokenizer(folder):
    return template_tokenizer(folder, "qwen")


class Replies:
    """What the patched generate writes: the next reply, as token ids ending with the end-of-turn token, handed
    to a streamer (where one is given) a token at a time, as generate hands them."""

    def __init__(self, backend: TransformersBackend) -> None:
        self.backend, self.text, self.prompts = backend, "", []

    def __call__(self, arguments) -> list[int]:
        import torch

        self.prompts.append(self.backend.tokenizer.decode(arguments["input_ids"][0]))
        new = self.backend.tokenizer(self.text, add_special_tokens=False)["input_ids"] + [self.backend.ends[0]]
        streamer = arguments.get("streamer")
        if streamer is not None:
            streamer.put(arguments["input_ids"])
            for token in new:
                streamer.put(torch.tensor([token]))
            streamer.end()
        return new


@contextmanager
def serving(folder, template: str, name: str = "qwen-tiny"):
    """The tiny model served with a registry template, its generation replaced: (client, replies)."""
    from transformers import AutoModelForCausalLM

    backend = TransformersBackend(
        AutoModelForCausalLM.from_pretrained(folder), template_tokenizer(folder, template), name
    )
    replies = Replies(backend)
    backend._generate = replies
    with Running(build_app(backend)) as url:
        yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0), replies


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    with serving(tiny_model_dir, "qwen") as served:
        yield served


def test_a_tool_call_is_read_from_the_reply(served):
    client, replies = served
    replies.text = CALL
    answer = client.chat.completions.create(**ASKED, max_tokens=64)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # the template wrote the tools into the prompt the model saw
    assert "<tools>" in replies.prompts[-1] and '"name": "get_weather"' in replies.prompts[-1]


def test_text_before_two_calls_stays_the_content_and_the_calls_keep_their_order(served):
    client, replies = served
    replies.text = "Checking.\n" + CALL + "\n" + CALL.replace("Paris", "Oslo")
    choice = client.chat.completions.create(**ASKED, max_tokens=64).choices[0]
    assert choice.message.content == "Checking."
    cities = [json.loads(call.function.arguments)["city"] for call in choice.message.tool_calls]
    assert cities == ["Paris", "Oslo"] and len({call.id for call in choice.message.tool_calls}) == 2


def test_a_streamed_tool_call(served):
    client, replies = served
    replies.text = CALL
    chunks = list(client.chat.completions.create(**ASKED, max_tokens=64, stream=True))
    calls = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert [(call.index, call.function.name, json.loads(call.function.arguments)) for call in calls] == [
        (0, "get_weather", {"city": "Paris"})
    ]
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    finals = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finals == ["tool_calls"]


def test_text_before_the_calls_streams_first_and_the_calls_follow_whole(served):
    client, replies = served
    replies.text = "Checking the weather for you.\n" + CALL + "\n" + CALL.replace("Paris", "Oslo")
    with client.chat.completions.stream(**ASKED, max_tokens=64) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    kinds = [event.type for event in events]
    texts = [event.delta for event in events if event.type == "content.delta"]
    # the text came in pieces as written, all before the first call, and none of the marker leaked
    assert "".join(texts) == "Checking the weather for you." and len(texts) > 1
    assert max(n for n, kind in enumerate(kinds) if kind == "content.delta") < kinds.index(
        "tool_calls.function.arguments.done"
    )
    done = [
        (event.index, event.name, json.loads(event.arguments))
        for event in events
        if event.type == "tool_calls.function.arguments.done"
    ]
    assert done == [(0, "get_weather", {"city": "Paris"}), (1, "get_weather", {"city": "Oslo"})]
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking the weather for you."
    assert [call.function.name for call in choice.message.tool_calls] == ["get_weather", "get_weather"]
    assert len({call.id for call in choice.message.tool_calls}) == 2


@pytest.mark.parametrize(
    "reply",
    [
        "It is sunny in Paris, and 2 < 3 <tool> is no call.",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',  # broken JSON
        'Let me see. <tool_call>{"arguments": {}}</tool_call>',  # no name
    ],
)
def test_a_streamed_reply_without_a_readable_call_is_all_content(served, reply):
    client, replies = served
    replies.text = reply
    chunks = list(client.chat.completions.create(**ASKED, max_tokens=64, stream=True))
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert "".join(texts) == reply
    assert not any(chunk.choices[0].delta.tool_calls for chunk in chunks if chunk.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"
    if not reply.startswith("<tool_call>"):
        assert len(texts) > 1  # what could not be a call was sent before the reply ended


def test_a_marker_cut_anywhere_never_leaks(tiny_model_dir):
    templating = Templating(qwen_tokenizer(tiny_model_dir))
    prompt = templating.prompt([{"role": "user", "content": "hi"}], [WEATHER])
    reply = "Checking.\n" + CALL
    for cut in range(1, len(reply)):
        reader = templating.reader(prompt)
        shown = reader.feed(reply[:cut]) + reader.feed(reply[cut:])
        rest, calls = reader.finish()
        assert shown == reply[: min(cut, len("Checking."))] or shown == "Checking.", cut
        assert shown + rest == "Checking." and [call["index"] for call in calls] == [0]
    # a character at a time: "<" waits until it cannot open a call, then passes
    reader = templating.reader(prompt)
    shown = [reader.feed(char) for char in "a <b"]
    assert shown == ["a", "", "", " <b"] and reader.finish() == ("", [])


def test_a_call_marked_by_special_tokens_is_streamed_to_the_reader(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    tokenizer = qwen_tokenizer(tiny_model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    backend = TransformersBackend(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, "qwen-tiny")
    replies = Replies(backend)
    backend._generate, replies.text = replies, "Sure.\n" + CALL
    assert tokenizer.convert_tokens_to_ids("<tool_call>") in tokenizer(CALL, add_special_tokens=False)["input_ids"]
    prompt = backend.prompt([{"role": "user", "content": "hi"}], [WEATHER])
    reader = backend.templating.reader(prompt)
    pieces = [piece for piece in backend.stream(prompt, Sampling(0.0, 1.0, 64)) if isinstance(piece, str)]
    assert "".join(pieces) == "Sure.\n" + CALL  # the markers kept, the end-of-turn token dropped
    shown = "".join(reader.feed(piece) for piece in pieces)
    rest, [call] = reader.finish()
    assert shown + rest == "Sure." and call["function"]["name"] == "get_weather"


def test_tool_choice_none_offers_no_tools_and_reads_no_calls(served):
    client, replies = served
    replies.text = CALL
    choice = client.chat.completions.create(**ASKED, tool_choice="none", max_tokens=64).choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert "<tool_call>" in choice.message.content and "<tools>" not in replies.prompts[-1]


def test_a_tool_result_goes_back_to_the_model_in_the_template_s_format(served):
    client, replies = served
    replies.text = "Sunny."
    messages = [
        *ASKED["messages"],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 22C"},
    ]
    choice = client.chat.completions.create(**{**ASKED, "messages": messages}, max_tokens=64).choices[0]
    assert choice.message.content == "Sunny." and choice.finish_reason == "stop"
    assert replies.prompts[-1].endswith(
        "<|im_start|>assistant\n" + CALL + "<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nsunny, 22C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "reply",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',  # broken JSON
        '<tool_call>\n{"name": "get_weather"',  # cut off
        "<tool_call>[1, 2]</tool_call>",  # JSON, not a call
        '<tool_call>{"arguments": {}}</tool_call>',  # no name
        "It is sunny.",
    ],
)
def test_a_reply_without_a_readable_call_is_plain_content(tiny_model_dir, reply):
    templating = Templating(qwen_tokenizer(tiny_model_dir))
    prompt = templating.prompt([{"role": "user", "content": "hi"}], [WEATHER])
    assert isinstance(prompt, Prompt) and prompt.tools
    assert templating.tool_calls(prompt, reply) == (reply, [])


def test_the_qwen_jinja_renders_plain_conversations_as_before(tiny_model_dir):
    tokenizer = qwen_tokenizer(tiny_model_dir)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == TEMPLATES["qwen"].render(messages)
    assert TEMPLATES["qwen"].system is not None and TEMPLATES["qwen"].system_placement == "own_turn"


def test_tools_on_a_template_without_a_tool_format_are_a_400(tiny_model_dir):
    with serving(tiny_model_dir, "chatml") as (client, _):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**ASKED)
    assert "no tool format" in caught.value.body["message"] and caught.value.body["param"] == "tools"


# --- Llama 3.1's JSON tool calling (the llama3 template) ------------------------------------------------------

LLAMA_CALL = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
LLAMA_ASKED = {**ASKED, "model": "llama-tiny"}


@pytest.fixture(scope="module")
def served_llama(tiny_model_dir):
    with serving(tiny_model_dir, "llama3", "llama-tiny") as served:
        yield served


def test_the_llama3_jinja_offers_tools_writes_one_call_and_hands_each_result_back_in_an_ipython_turn(
    tiny_tokenizer,
):
    llama3 = TEMPLATES["llama3"]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny"},
        {"role": "tool", "content": "22C"},
    ]
    rendered = tiny_tokenizer.apply_chat_template(
        messages, tools=[WEATHER], chat_template=llama3.jinja(), tokenize=False, add_generation_prompt=True
    )
    signature = json.dumps(WEATHER)
    assert rendered == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"You may call functions to answer. Their signatures, one JSON object a line:\n{signature}\n\n"
        "To call one, answer with nothing but a JSON object holding its name and arguments: "
        '{"name": <function-name>, "parameters": <args-json-object>}<|eot_id|>'
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{LLAMA_CALL}<|eot_id|>"
        "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>"
        "<|start_header_id|>ipython<|end_header_id|>\n\n22C<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # a system prompt comes first, the offer after it; the format has room for one call a reply
    with_system = tiny_tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, messages[0]],
        tools=[WEATHER],
        chat_template=llama3.jinja(),
        tokenize=False,
    )
    assert with_system.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\nYou may call"
    )
    two = [{**messages[1], "tool_calls": messages[1]["tool_calls"] * 2}]
    with pytest.raises(TemplateError, match="room for 1 call"):
        tiny_tokenizer.apply_chat_template([messages[0], *two], chat_template=llama3.jinja(), tokenize=False)


@pytest.mark.parametrize(
    ("reply", "content"),
    [
        (LLAMA_CALL, None),
        ("<|python_tag|>" + LLAMA_CALL, None),
        ("I will look it up.\n" + LLAMA_CALL, "I will look it up."),
    ],
)
def test_a_llama3_call_alone_or_after_the_python_tag_is_read_plain_and_streamed(served_llama, reply, content):
    client, replies = served_llama
    replies.text = reply
    choice = client.chat.completions.create(**LLAMA_ASKED, max_tokens=64).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == content
    [call] = choice.message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert "You may call functions" in replies.prompts[-1]
    with client.chat.completions.stream(**LLAMA_ASKED, max_tokens=64) as stream:
        events = list(stream)
        final = stream.get_final_completion().choices[0]
    texts = [event.delta for event in events if event.type == "content.delta"]
    assert "".join(texts) == (content or "") and not any("{" in text or "<|" in text for text in texts)
    assert final.finish_reason == "tool_calls"
    assert [json.loads(call.function.arguments) for call in final.message.tool_calls] == [{"city": "Paris"}]


@pytest.mark.parametrize(
    "reply",
    [
        "Paris is sunny; a set is written {1, 2}.",
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',  # OpenAI's key, not the format's
        '{"name": "get_weather", "parameters": {"city": ',  # cut off
    ],
)
def test_a_llama3_reply_without_a_readable_call_is_content_plain_and_streamed(served_llama, reply):
    client, replies = served_llama
    replies.text = reply
    choice = client.chat.completions.create(**LLAMA_ASKED, max_tokens=64).choices[0]
    assert (choice.message.content, choice.message.tool_calls, choice.finish_reason) == (reply, None, "stop")
    chunks = list(client.chat.completions.create(**LLAMA_ASKED, max_tokens=64, stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == reply
    assert chunks[-1].choices[0].finish_reason == "stop"
