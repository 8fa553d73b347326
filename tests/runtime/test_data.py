"""Reading alpaca datasets into conversations, and pointing at the exact record when one is wrong."""

from __future__ import annotations

import json

import pytest

from ftc.runtime.data import dataset_conversations, load_conversations
from ftc.runtime.errors import RuntimeUserError
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
