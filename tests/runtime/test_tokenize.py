"""Token ids and loss masks: the loss falls on the assistant's replies and end markers, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import Conversation
from ftc.runtime.data.tokenize import (
    IGNORE_INDEX,
    conversation_segments,
    describe_data,
    encode_conversations,
    encode_segments,
    use_template,
)
from ftc.spec.chat_templates import Segment

TWO_TURNS = [
    {"role": "user", "content": "Add the two numbers.\n\n2 + 3"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Write the word in capital letters.\n\nlamp"},
    {"role": "assistant", "content": "LAMP"},
]

# Each format written out by hand, as (text, trainable) pieces: the registry must produce exactly these.
EXPECTED = {
    "llama3": [
        ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nAdd the two numbers.\n\n2 + 3<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ("5<|eot_id|>", True),
        ("<|start_header_id|>user<|end_header_id|>\n\nWrite the word in capital letters.\n\nlamp<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ("LAMP<|eot_id|>", True),
    ],
    "chatml": [
        ("<|im_start|>user\nAdd the two numbers.\n\n2 + 3<|im_end|>\n<|im_start|>assistant\n", False),
        ("5<|im_end|>", True),
        ("\n<|im_start|>user\nWrite the word in capital letters.\n\nlamp<|im_end|>\n<|im_start|>assistant\n", False),
        ("LAMP<|im_end|>", True),
        ("\n", False),
    ],
    "mistral": [
        ("<s>[INST] Add the two numbers.\n\n2 + 3 [/INST]", False),
        ("5</s>", True),
        ("[INST] Write the word in capital letters.\n\nlamp [/INST]", False),
        ("LAMP</s>", True),
    ],
    "gemma": [
        ("<bos><start_of_turn>user\nAdd the two numbers.\n\n2 + 3<end_of_turn>\n<start_of_turn>model\n", False),
        ("5<end_of_turn>", True),
        ("\n<start_of_turn>user\nWrite the word in capital letters.\n\nlamp<end_of_turn>\n"
         "<start_of_turn>model\n", False),
        ("LAMP<end_of_turn>", True),
        ("\n", False),
    ],
}  # fmt: skip


def trainable_runs(example: dict[str, list[int]], tokenizer) -> list[str]:
    """The decoded text of each contiguous stretch of trained positions."""
    runs: list[list[int]] = []
    previous_trained = False
    for label in example["labels"]:
        trained = label != IGNORE_INDEX
        if trained and not previous_trained:
            runs.append([])
        if trained:
            runs[-1].append(label)
        previous_trained = trained
    return [tokenizer.decode(run) for run in runs]


@pytest.mark.parametrize("template_name", sorted(EXPECTED))
def test_two_turn_ids_and_mask(template_name, tiny_tokenizer):
    expected_ids: list[int] = []
    expected_labels: list[int] = []
    for text, trainable in EXPECTED[template_name]:
        ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        expected_ids += ids
        expected_labels += ids if trainable else [IGNORE_INDEX] * len(ids)

    example = encode_segments(tiny_tokenizer, conversation_segments(tiny_tokenizer, template_name, TWO_TURNS))

    assert example["input_ids"] == expected_ids
    assert example["labels"] == expected_labels
    replies = [text for text, trainable in EXPECTED[template_name] if trainable]
    assert trainable_runs(example, tiny_tokenizer) == replies
    assert all(
        label in (token, IGNORE_INDEX) for token, label in zip(example["input_ids"], example["labels"], strict=True)
    )


def test_llama3_special_tokens_are_single_ids(tiny_tokenizer):
    example = encode_segments(tiny_tokenizer, conversation_segments(tiny_tokenizer, "llama3", TWO_TURNS))
    eot = tiny_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert example["input_ids"][0] == tiny_tokenizer.bos_token_id
    assert example["input_ids"].count(eot) == 4  # two user turns, two replies
    trained_eots = [label for label in example["labels"] if label == eot]
    assert len(trained_eots) == 2  # only the replies' end markers are learned


def test_auto_agrees_with_llama3(tiny_tokenizer):
    # The tiny tokenizer carries our llama3 template, so its own template must give the same tokens and mask.
    with_system = [{"role": "system", "content": "Answer briefly."}, *TWO_TURNS]
    for messages in (TWO_TURNS, with_system):
        auto = encode_segments(tiny_tokenizer, conversation_segments(tiny_tokenizer, "auto", messages))
        named = encode_segments(tiny_tokenizer, conversation_segments(tiny_tokenizer, "llama3", messages))
        assert auto == named


def test_auto_without_a_chat_template_asks_for_a_name(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    with pytest.raises(RuntimeUserError) as caught:
        use_template(tokenizer, "auto")
    assert "no chat template" in caught.value.message and "llama3" in caught.value.hint


def test_auto_refuses_a_template_that_does_not_render_prefix_wise(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # Writes the number of messages first, so a longer conversation does not extend a shorter one.
    tokenizer.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(RuntimeUserError) as caught:
        conversation_segments(tokenizer, "auto", TWO_TURNS)
    assert "prefix" in caught.value.message and "model.template" in caught.value.hint


def test_use_template_sets_the_jinja_the_tokenizer_saves(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    use_template(tokenizer, "chatml")
    rendered = tokenizer.apply_chat_template(TWO_TURNS[:1], tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nAdd the two numbers.\n\n2 + 3<|im_end|>\n<|im_start|>assistant\n"


def test_truncation_keeps_examples_with_a_reply_and_drops_the_rest(tiny_tokenizer):
    one_turn = TWO_TURNS[:2]
    segments = conversation_segments(tiny_tokenizer, "llama3", one_turn)
    first_reply_end = len(encode_segments(tiny_tokenizer, segments)["input_ids"])
    long_prompt = [{"role": "user", "content": "apple " * 200}, {"role": "assistant", "content": "done"}]
    conversations = [
        Conversation("a record 0", one_turn),  # fits
        Conversation("a record 1", TWO_TURNS),  # loses its second turn, keeps the first reply
        Conversation("a record 2", long_prompt),  # its reply lies past the cut
    ]
    data = encode_conversations(tiny_tokenizer, conversations, "llama3", cutoff_len=first_reply_end + 3)
    assert (len(data.examples), data.truncated, data.dropped) == (2, 1, 1)
    assert [len(example["input_ids"]) for example in data.examples] == [first_reply_end, first_reply_end + 3]
    assert trainable_runs(data.examples[1], tiny_tokenizer) == ["5<|eot_id|>"]


def test_no_example_within_cutoff_is_a_user_error(tiny_tokenizer):
    long_prompt = [{"role": "user", "content": "apple " * 200}, {"role": "assistant", "content": "done"}]
    with pytest.raises(RuntimeUserError) as caught:
        encode_conversations(tiny_tokenizer, [Conversation("a record 0", long_prompt)], "llama3", cutoff_len=16)
    assert "cutoff_len" in caught.value.hint


def test_a_template_refusing_a_record_names_the_record(tiny_tokenizer):
    conversations = [Conversation("data/x.json record 3", [{"role": "system", "content": "Be kind."}, *TWO_TURNS])]
    with pytest.raises(RuntimeUserError) as caught:
        encode_conversations(tiny_tokenizer, conversations, "mistral", cutoff_len=64)
    assert caught.value.message.startswith("data/x.json record 3: ")
    assert "system" in caught.value.message


def test_empty_segments_add_no_tokens(tiny_tokenizer):
    example = encode_segments(tiny_tokenizer, [Segment("user", False), Segment("", True), Segment("ok", True)])
    assert len(example["input_ids"]) == len(example["labels"])
    assert trainable_runs(example, tiny_tokenizer) == ["ok"]


def test_a_template_whose_end_marker_is_no_token_here_is_flagged(tiny_tokenizer):
    conversations = [Conversation("a record 0", TWO_TURNS)]
    for name, warned in (("llama3", False), ("chatml", True)):
        data = encode_conversations(tiny_tokenizer, conversations, name, cutoff_len=256)
        line = describe_data(data, tiny_tokenizer, name)
        assert line.startswith("data: 1 examples")
        assert ("warning: '<|im_end|>' is not a single token" in line) is warned


def _one_at_a_time(tokenizer, conversations, template_name, cutoff_len):
    """The reference: each segment of each conversation encoded by its own tokenizer call, then cut."""
    examples, truncated, dropped = [], 0, 0
    for conversation in conversations:
        input_ids, labels = [], []
        for segment in conversation_segments(tokenizer, template_name, conversation.messages):
            ids = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
            input_ids += ids
            labels += ids if segment.trainable else [IGNORE_INDEX] * len(ids)
        if all(label == IGNORE_INDEX for label in labels[:cutoff_len]):
            dropped += 1
            continue
        truncated += len(input_ids) > cutoff_len
        examples.append({"input_ids": input_ids[:cutoff_len], "labels": labels[:cutoff_len]})
    return examples, truncated, dropped


_PIECES = [*"ab cdé\n\t7+ ", "apple", " river", "ünï", "<|eot_id|>"]  # a special token inside content too
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    turns=st.lists(st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=3), min_size=1, max_size=6),
    template_name=st.sampled_from(["llama3", "chatml", "llama2", "mistral", "qwen"]),
    cutoff_len=st.integers(min_value=1, max_value=48),
)
def test_encoding_in_one_batch_gives_what_one_call_per_segment_gives(tiny_tokenizer, turns, template_name, cutoff_len):
    conversations = [
        Conversation(
            f"record {index}",
            [
                {"role": role, "content": text}
                for pair in pairs
                for role, text in zip(("user", "assistant"), pair, strict=True)
            ],
        )
        for index, pairs in enumerate(turns)
    ]
    expected, truncated, dropped = _one_at_a_time(tiny_tokenizer, conversations, template_name, cutoff_len)
    if not expected:
        with pytest.raises(RuntimeUserError, match="no example has a reply"):
            encode_conversations(tiny_tokenizer, conversations, template_name, cutoff_len)
        return
    data = encode_conversations(tiny_tokenizer, conversations, template_name, cutoff_len)
    assert (data.examples, data.truncated, data.dropped) == (expected, truncated, dropped)


def test_a_tokenizer_whose_python_side_changes_the_ids_is_called_whole(tiny_tokenizer):
    from ftc.runtime.data.batch_encode import encode_batch

    class Adjusting:
        """As some tokenizer classes do in Python (a prefix, a legacy space): the Rust backend alone differs."""

        backend_tokenizer = tiny_tokenizer.backend_tokenizer

        def __call__(self, texts, add_special_tokens):
            return {"input_ids": [[7, *tiny_tokenizer(text, add_special_tokens=False)["input_ids"]] for text in texts]}

    ids, lengths = encode_batch(Adjusting(), ["apple", "river stone"])
    expected = Adjusting()(["apple", "river stone"], add_special_tokens=False)["input_ids"]
    assert ids.tolist() == expected[0] + expected[1] and lengths.tolist() == [len(expected[0]), len(expected[1])]
