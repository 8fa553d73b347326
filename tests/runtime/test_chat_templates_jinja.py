"""Each registry template's jinja, run by transformers, renders exactly what the registry renders.

This is what makes a saved tokenizer prompt a model the way it was trained.
"""

from __future__ import annotations

import pytest
from jinja2 import TemplateError

from ftc.spec.chat_templates import TEMPLATES, ChatTemplateError

SYSTEM = {"role": "system", "content": "You answer in one line."}
TURNS = [
    {"role": "user", "content": "Repeat the word 2 times.\n\nstone"},
    {"role": "assistant", "content": "stone stone"},
    {"role": "user", "content": 'Quote this: "a\\b" — ünïcode'},
    {"role": "assistant", "content": '"a\\b" — ünïcode'},
    {"role": "user", "content": "What colour is the sky?"},
    {"role": "assistant", "content": "The sky is blue."},
]


def apply(tokenizer, template, messages, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template.jinja(), tokenize=False, add_generation_prompt=add_generation_prompt
    )


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_jinja_renders_like_the_registry(name, tiny_tokenizer):
    template = TEMPLATES[name]
    conversations = [TURNS] + ([[SYSTEM, *TURNS]] if template.supports_system else [])
    for messages in conversations:
        assert apply(tiny_tokenizer, template, messages) == template.render(messages)
        prompt = messages[:-1]
        assert apply(tiny_tokenizer, template, prompt, add_generation_prompt=True) == template.render(prompt, True)


def test_llama3_and_chatml_render_their_known_formats():
    messages = [SYSTEM, *TURNS[:2]]
    assert TEMPLATES["llama3"].render(messages) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou answer in one line.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nRepeat the word 2 times.\n\nstone<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nstone stone<|eot_id|>"
    )
    assert TEMPLATES["chatml"].render(messages) == (
        "<|im_start|>system\nYou answer in one line.<|im_end|>\n"
        "<|im_start|>user\nRepeat the word 2 times.\n\nstone<|im_end|>\n"
        "<|im_start|>assistant\nstone stone<|im_end|>\n"
    )


def test_qwen_brings_its_default_system_prompt(tiny_tokenizer):
    rendered = apply(tiny_tokenizer, TEMPLATES["qwen"], TURNS[:1], add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert rendered == TEMPLATES["qwen"].render(TURNS[:1], add_generation_prompt=True)


def test_a_system_message_goes_inside_the_first_user_turn_for_llama2_and_gemma():
    assert (
        TEMPLATES["llama2"]
        .render([SYSTEM, *TURNS[:2]])
        .startswith("<s>[INST] <<SYS>>\nYou answer in one line.\n<</SYS>>\n\nRepeat the word")
    )
    assert (
        TEMPLATES["gemma"]
        .render([SYSTEM, *TURNS[:2]])
        .startswith("<bos><start_of_turn>user\nYou answer in one line.\n\nRepeat the word")
    )


def test_mistral_refuses_a_system_message_both_ways(tiny_tokenizer):
    with pytest.raises(ChatTemplateError):
        TEMPLATES["mistral"].render([SYSTEM, *TURNS])
    with pytest.raises(TemplateError):
        apply(tiny_tokenizer, TEMPLATES["mistral"], [SYSTEM, *TURNS])


def test_turns_must_alternate():
    with pytest.raises(ChatTemplateError, match="message 1"):
        TEMPLATES["chatml"].segments([TURNS[0], TURNS[2]])


CONVERSATION = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Yo"},
    {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "A2"},
]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("chatglm3", "[gMASK]sop<|system|>\nS<|user|>\nHi<|assistant|>\nYo<|user|>\nQ2<|assistant|>\nA2<|user|>"),
        (
            "deepseek",
            "<｜begin▁of▁sentence｜>S\n\nUser: Hi\n\nAssistant: Yo<｜end▁of▁sentence｜>User: Q2\n\nAssistant: "
            "A2<｜end▁of▁sentence｜>",
        ),
        (
            "deepseek3",
            "<｜begin▁of▁sentence｜>S<｜User｜>Hi<｜Assistant｜>Yo<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜>"
            "A2<｜end▁of▁sentence｜>",
        ),
        ("baichuan2", "S<reserved_106>Hi<reserved_107>Yo</s><reserved_106>Q2<reserved_107>A2</s>"),
        ("yi", TEMPLATES["chatml"].render(CONVERSATION)),
    ],
)
def test_more_families_render_their_known_formats(name, text, tiny_tokenizer):
    assert TEMPLATES[name].render(CONVERSATION) == text
    assert apply(tiny_tokenizer, TEMPLATES[name], CONVERSATION) == text


def test_a_chatglm3_reply_learns_to_open_the_next_user_turn():
    segments = TEMPLATES["chatglm3"].segments(CONVERSATION)
    trained = [segment.text for segment in segments if segment.trainable]
    assert trained == ["Yo<|user|>", "A2<|user|>"]
    assert TEMPLATES["chatglm3"].render(CONVERSATION[:2], add_generation_prompt=True).endswith("Hi<|assistant|>\n")
