"""Preference records for trl: checked through our template, measured against the cutoff, and rendered by trl
(through the tokenizer's chat template, which is ours) into prompt + reply with the end marker trained."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import KtoExample, PreferencePair
from ftc.runtime.data.preference import describe_preferences, encode_kto_examples, encode_pairs
from ftc.runtime.data.tokenize import use_template

HISTORY = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Add the two numbers.\n\n2 + 3"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Write the word in capital letters.\n\nlamp"},
]
PAIR = PreferencePair("pairs.json record 0", HISTORY, chosen="LAMP", rejected="I do not know.")


@pytest.fixture
def tokenizer(tiny_model_dir):
    fresh = AutoTokenizer.from_pretrained(tiny_model_dir)  # use_template changes it: not the shared one
    use_template(fresh, "llama3")
    return fresh


def test_pairs_become_conversational_records_that_trl_renders_with_our_template(tokenizer):
    data = encode_pairs(tokenizer, [PAIR], "llama3", cutoff_len=256)
    (record,) = data.records
    assert record == {
        "prompt": HISTORY,
        "chosen": [{"role": "assistant", "content": "LAMP"}],
        "rejected": [{"role": "assistant", "content": "I do not know."}],
    }
    # What trl does with such a record: the prompt with the generation prompt, then prompt + reply.
    prompt = tokenizer.apply_chat_template(record["prompt"], tokenize=False, add_generation_prompt=True)
    for key, reply in (("chosen", "LAMP"), ("rejected", "I do not know.")):
        whole = tokenizer.apply_chat_template(record["prompt"] + record[key], tokenize=False)
        assert whole.startswith(prompt) and prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
        assert whole[len(prompt) :] == reply + "<|eot_id|>"  # the end marker is part of the trained reply
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert data.prompt_tokens == [len(prompt_ids)]
    rejected_ids = tokenizer("I do not know.<|eot_id|>", add_special_tokens=False)["input_ids"]
    assert data.reply_tokens == [len(rejected_ids)]  # the longer reply of the two


def test_the_cutoff_truncates_or_drops_and_says_so(tokenizer):
    prompt_length = encode_pairs(tokenizer, [PAIR], "llama3", 256).prompt_tokens[0]
    short = PreferencePair("pairs.json record 1", [{"role": "user", "content": "hi"}], "hello", "no")
    cutoff = prompt_length + 3  # room for some of a reply, not all of it

    kept = encode_pairs(tokenizer, [PAIR, short], "llama3", cutoff)
    assert (len(kept.records), kept.truncated, kept.dropped) == (2, 1, 0)
    strict = encode_pairs(tokenizer, [PAIR, short], "llama3", cutoff, drop_long=True)  # rm: a cut reply is another text
    assert (strict.records[0]["chosen"][0]["content"], strict.truncated, strict.dropped) == ("hello", 0, 1)
    no_room = encode_pairs(tokenizer, [PAIR, short], "llama3", prompt_length)
    assert (len(no_room.records), no_room.dropped) == (1, 1)
    line = describe_preferences(strict, tokenizer, "llama3")
    assert line.startswith("data: 1 pairs, prompt ") and "0 truncated, 1 dropped), template llama3" in line

    with pytest.raises(RuntimeUserError, match="no record fits within data.cutoff_len = 8 tokens") as caught:
        encode_pairs(tokenizer, [PAIR], "llama3", 8)
    assert caught.value.hint == "raise data.cutoff_len"


def test_a_record_the_template_refuses_is_named_before_trl_sees_it(tiny_model_dir):
    mistral = AutoTokenizer.from_pretrained(tiny_model_dir)
    use_template(mistral, "mistral")  # Mistral's format has no system turn
    with pytest.raises(RuntimeUserError, match="^pairs.json record 0: ") as caught:
        encode_pairs(mistral, [PAIR], "mistral", 256)
    assert "model.template" in caught.value.hint


def test_kto_examples_keep_their_label(tokenizer):
    examples = [
        KtoExample("kto.json record 0", HISTORY, "LAMP", True),
        KtoExample("kto.json record 1", HISTORY, "No.", False),
    ]
    data = encode_kto_examples(tokenizer, examples, "llama3", 256)
    assert [(record["completion"][0]["content"], record["label"]) for record in data.records] == [
        ("LAMP", True),
        ("No.", False),
    ]
    assert describe_preferences(data, tokenizer, "llama3", what="examples").startswith("data: 2 examples, prompt ")
