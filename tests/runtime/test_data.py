"""The data loaders: every kind of example, the exact record named when one is wrong, mixing and eval splits."""

from __future__ import annotations

import json

import pytest

from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import (
    KtoExample,
    PreferencePair,
    TextDocument,
    dataset_conversations,
    iter_conversations,
    iter_texts,
    load_conversations,
    load_kto_examples,
    load_preferences,
    load_texts,
    train_eval_split,
)
from ftc.spec.models import DataSection, DatasetSection

GOOD = {"instruction": "Add the two numbers.", "input": "2 + 3", "output": "5"}


def write_json(path, records):
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_instruction_and_input_form_the_user_turn(tmp_path):
    records = [GOOD, {"instruction": "What colour is the sky?", "input": "", "output": "Blue."}]
    conversations = dataset_conversations(DatasetSection(path=str(write_json(tmp_path / "d.json", records))))
    assert [c.messages for c in conversations] == [
        [{"role": "user", "content": "Add the two numbers.\n\n2 + 3"}, {"role": "assistant", "content": "5"}],
        [{"role": "user", "content": "What colour is the sky?"}, {"role": "assistant", "content": "Blue."}],
    ]
    assert conversations[1].where.endswith("d.json record 1")


def test_system_and_history_come_first(tmp_path):
    record = {**GOOD, "system": "Be brief.", "history": [["Hi", "Hello."]]}
    (conversation,) = dataset_conversations(DatasetSection(path=str(write_json(tmp_path / "d.json", [record]))))
    assert [m["role"] for m in conversation.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert conversation.messages[1:3] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]


def test_a_bad_record_is_named_by_file_and_index(tmp_path):
    records = [GOOD] * 7 + [{"instruction": "Add the two numbers.", "input": "1 + 1"}] + [GOOD]
    path = write_json(tmp_path / "x.json", records)
    with pytest.raises(RuntimeUserError) as caught:
        dataset_conversations(DatasetSection(path=str(path)))
    assert caught.value.message == f"{path} record 7: missing 'output'"
    assert "instruction" in caught.value.hint


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"instruction": 3, "output": "x"}, "'instruction' must be a string"),
        ({"instruction": "", "input": "", "output": "x"}, "both empty"),
        ("just text", "expected an object with named fields"),
        ({**GOOD, "history": [["only one"]]}, "'history' turn 0"),
    ],
)
def test_each_kind_of_bad_record_says_what_is_wrong(tmp_path, record, complaint):
    path = write_json(tmp_path / "x.json", [GOOD, record])
    with pytest.raises(RuntimeUserError, match="record 1: ") as caught:
        dataset_conversations(DatasetSection(path=str(path)))
    assert complaint in caught.value.message


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + "{not json\n", encoding="utf-8")
    with pytest.raises(RuntimeUserError, match=r"x\.jsonl line 3: invalid JSON"):
        dataset_conversations(DatasetSection(path=str(path)))


def test_max_samples_and_several_datasets(tmp_path):
    first = write_json(tmp_path / "a.json", [GOOD] * 5)
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "b.jsonl").write_text("\n".join(json.dumps(GOOD) for _ in range(3)), encoding="utf-8")
    data = DataSection(datasets=[DatasetSection(path=str(first), max_samples=2), DatasetSection(path=str(folder))])
    assert len(load_conversations(data)) == 2 + 3


def test_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(RuntimeUserError, match="not found"):
        dataset_conversations(DatasetSection(path=str(tmp_path / "absent.json")))


# --- one loader per kind of example ---------------------------------------------------------------


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def data_of(path, data_format, **options):
    return DataSection(datasets=[DatasetSection(path=str(path), format=data_format, **options)])


def test_each_loader_reads_its_format(tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q", "chosen": "good", "rejected": "bad"}])
    assert load_preferences(data_of(pairs, "preference")) == [
        PreferencePair(f"{pairs} line 1", [{"role": "user", "content": "Q"}], "good", "bad")
    ]
    kto = write_jsonl(tmp_path / "k.jsonl", [{"prompt": "Q", "completion": "A", "label": False}])
    assert load_kto_examples(data_of(kto, "kto")) == [
        KtoExample(f"{kto} line 1", [{"role": "user", "content": "Q"}], "A", False)
    ]
    texts = write_jsonl(tmp_path / "t.jsonl", [{"body": "Once."}, {"body": "Twice."}])
    assert load_texts(data_of(texts, "text", columns={"text": "body"})) == [
        TextDocument(f"{texts} line 1", "Once."),
        TextDocument(f"{texts} line 2", "Twice."),
    ]
    chats = write_jsonl(
        tmp_path / "c.jsonl", [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]
    )
    assert load_conversations(data_of(chats, "sharegpt"))[0].messages[-1] == {"role": "assistant", "content": "Hello"}


def test_a_format_the_stage_cannot_use_names_the_formats_it_takes(tmp_path):
    path = write_json(tmp_path / "d.json", [GOOD])
    with pytest.raises(RuntimeUserError) as caught:
        load_preferences(data_of(path, "alpaca"))
    assert caught.value.message == (
        "data.datasets[0].format = 'alpaca', but this stage trains on preference pairs, read from format 'preference'"
    )
    with pytest.raises(
        RuntimeUserError, match="trains on conversations, read from format 'alpaca', 'sharegpt', 'messages'"
    ):
        load_conversations(data_of(path, "kto"))


def test_a_bad_record_with_mapped_columns_is_blamed_on_the_files_column(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "Q", "a": "A"}, {"q": "Q"}])
    with pytest.raises(RuntimeUserError) as caught:
        load_conversations(data_of(path, "alpaca", columns={"instruction": "q", "output": "a"}))
    assert caught.value.message == f"{path} line 2: missing 'a'"
    assert "columns mapped: instruction = 'q', output = 'a'" in caught.value.hint


# --- mixing and evaluation ------------------------------------------------------------------------


def numbered(tmp_path, name, count):
    records = [{**GOOD, "output": f"{name}{n}"} for n in range(count)]
    return write_jsonl(tmp_path / f"{name}.jsonl", records)


def test_weighted_datasets_are_mixed_in_proportion_and_by_the_seed(tmp_path):
    data = DataSection(
        datasets=[
            DatasetSection(path=str(numbered(tmp_path, "a", 10)), weight=3.0),
            DatasetSection(path=str(numbered(tmp_path, "b", 50)), weight=1.0),
        ],
        mix_size=40,
    )
    mixed = load_conversations(data, seed=0)
    sources = [c.messages[-1]["content"][0] for c in mixed]
    assert (sources.count("a"), sources.count("b")) == (30, 10)
    assert mixed == load_conversations(data, seed=0) and mixed != load_conversations(data, seed=1)


def test_without_weights_datasets_are_concatenated_in_order(tmp_path):
    data = DataSection(
        datasets=[
            DatasetSection(path=str(numbered(tmp_path, "a", 2))),
            DatasetSection(path=str(numbered(tmp_path, "b", 2))),
        ]
    )
    assert [c.messages[-1]["content"] for c in load_conversations(data, seed=5)] == ["a0", "a1", "b0", "b1"]


def test_eval_ratio_holds_records_out_by_the_seed(tmp_path):
    data = DataSection(datasets=[DatasetSection(path=str(numbered(tmp_path, "a", 20)))], eval_ratio=0.2)
    conversations = load_conversations(data)
    train, evaluated = train_eval_split(conversations, data, seed=0)
    assert (len(train), len(evaluated)) == (16, 4)
    assert {c.where for c in train}.isdisjoint(c.where for c in evaluated)
    assert train_eval_split(conversations, data, seed=0) == (train, evaluated)
    assert train_eval_split(conversations, data, seed=1) != (train, evaluated)
    assert train_eval_split(conversations, data.model_copy(update={"eval_ratio": 0.0}), seed=0) == (conversations, [])


def test_eval_datasets_are_read_by_the_same_loader(tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q", "chosen": "good", "rejected": "bad"}])
    held = write_jsonl(tmp_path / "held.jsonl", [{"prompt": "Q2", "chosen": "yes", "rejected": "no"}])
    data = DataSection(
        datasets=[DatasetSection(path=str(pairs), format="preference")],
        eval_datasets=[DatasetSection(path=str(held), format="preference")],
    )
    train, evaluated = train_eval_split(load_preferences(data), data, seed=0)
    assert [pair.chosen for pair in train] == ["good"] and [pair.chosen for pair in evaluated] == ["yes"]
    wrong = data.model_copy(update={"eval_datasets": [DatasetSection(path=str(held), format="alpaca")]})
    with pytest.raises(RuntimeUserError, match=r"data\.eval_datasets\[0\]\.format = 'alpaca'"):
        train_eval_split(load_preferences(data), wrong, seed=0)


def test_an_eval_ratio_that_leaves_nothing_to_train_on(tmp_path):
    data = DataSection(datasets=[DatasetSection(path=str(numbered(tmp_path, "a", 1)))], eval_ratio=0.5)
    with pytest.raises(RuntimeUserError, match="leaves no record to train on"):
        train_eval_split(load_conversations(data), data, seed=0)


def test_streamed_conversations_are_read_as_they_are_consumed(tmp_path):
    path = numbered(tmp_path, "a", 3)
    with path.open("a", encoding="utf-8") as file:
        file.write("{not json\n")  # only reached if the stream is read that far
    stream = iter_conversations(DataSection(datasets=[DatasetSection(path=str(path))], streaming=True))
    assert [next(stream).messages[-1]["content"] for _ in range(3)] == ["a0", "a1", "a2"]
    with pytest.raises(RuntimeUserError, match="line 4: invalid JSON"):
        next(stream)


def test_a_streamed_pass_refuses_an_empty_dataset_up_front_and_streams_texts(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    texts = write_jsonl(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}])
    data = DataSection(
        datasets=[DatasetSection(path=str(texts), format="text"), DatasetSection(path=str(empty), format="text")]
    )
    with pytest.raises(RuntimeUserError, match=r"data\.datasets\[1\]: dataset .*empty\.jsonl has no records"):
        iter_texts(data)
    only_texts = DataSection(datasets=data.datasets[:1])
    assert [document.text for document in iter_texts(only_texts)] == ["one", "two"]


def test_a_conversation_carries_its_tool_definitions(tmp_path):
    tools = [{"type": "function", "function": {"name": "add"}}]
    conversation = [{"role": "user", "content": "Add."}, {"role": "assistant", "content": "Done."}]
    path = write_jsonl(
        tmp_path / "tools.jsonl", [{"messages": conversation, "tools": tools}, {"messages": conversation}]
    )
    with_tools, without = load_conversations(data_of(path, "messages"))
    assert (with_tools.tools, without.tools) == (tools, None)
