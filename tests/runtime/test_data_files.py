"""Every place a dataset can live: JSON, JSONL, CSV, Parquet, folders, save_to_disk folders, the hub (faked).

Also: a bad record is named by file and position whatever the file type, and the line-by-line
readers are lazy: taking the first records of a large file reads only its beginning.
"""

from __future__ import annotations

import builtins
import csv
import io
import json
from itertools import islice

import pytest

from ftc.errors import RuntimeUserError
from ftc.records import files as data_files
from ftc.runtime.data.loading import dataset_conversations, dataset_records, load_texts
from ftc.spec.models import DataSection, DatasetSection

RECORDS = [{"instruction": f"Say {n}.", "input": "", "output": str(n)} for n in range(5)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_csv(path, records):
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["instruction", "input", "output"])
        writer.writeheader()
        writer.writerows(records)
    return path


def write_parquet(path, records, row_group_size=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Plain and uncompressed: the file is as large as its text, like a real corpus.
    table = pa.Table.from_pylist(records)
    pq.write_table(table, path, row_group_size=row_group_size, compression="none", use_dictionary=False)
    return path


def replies(dataset):
    return [conversation.messages[-1]["content"] for conversation in dataset_conversations(dataset)]


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("d.json", lambda path, records: path.write_text(json.dumps(records), encoding="utf-8")),
        ("d.jsonl", write_jsonl),
        ("d.csv", write_csv),
        ("d.parquet", write_parquet),
    ],
)
def test_every_file_type_reads_the_same_records(tmp_path, name, write):
    write(tmp_path / name, RECORDS)
    assert replies(DatasetSection(path=str(tmp_path / name))) == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("name", "write", "complaint"),
    [
        ("d.json", lambda path, records: path.write_text(json.dumps(records), encoding="utf-8"), "record 5: missing"),
        ("d.jsonl", write_jsonl, "line 6: missing"),
        ("d.csv", write_csv, "line 7: 'output' is empty"),  # the header is line 1; a CSV cell is never missing
        ("d.parquet", write_parquet, "record 5: missing"),
    ],
)
def test_a_bad_record_is_named_by_file_and_position_in_every_file_type(tmp_path, name, write, complaint):
    path = tmp_path / name
    write(path, RECORDS + [{"instruction": "Say 5.", "input": "", "output": None}])
    with pytest.raises(RuntimeUserError) as caught:
        dataset_conversations(DatasetSection(path=str(path)))
    assert caught.value.message.startswith(f"{path} {complaint}")


def test_a_text_file_is_a_document_per_line_for_the_text_format(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First document.\n\nSecond one.\n", encoding="utf-8")
    documents = load_texts(DataSection(datasets=[DatasetSection(path=str(path), format="text")]))
    assert [(d.where, d.text) for d in documents] == [
        (f"{path} line 1", "First document."),
        (f"{path} line 3", "Second one."),
    ]


def test_a_json_file_holding_json_lines_is_read_as_json_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.json", RECORDS + [{"instruction": "Say 5."}])
    with pytest.raises(RuntimeUserError, match=r"d\.json line 6: missing 'output'"):
        replies(DatasetSection(path=str(path)))
    assert replies(DatasetSection(path=str(path), max_samples=5)) == ["0", "1", "2", "3", "4"]
    path.write_text(json.dumps({"data": RECORDS}, indent=1), encoding="utf-8")  # one object: neither
    with pytest.raises(RuntimeUserError, match="expected a JSON list of records"):
        replies(DatasetSection(path=str(path)))


def test_a_folder_reads_its_data_files_in_name_order_and_skips_others(tmp_path):
    write_jsonl(tmp_path / "part-0.jsonl", RECORDS[:2])
    write_csv(tmp_path / "part-1.csv", RECORDS[2:4])
    write_parquet(tmp_path / "part-2.parquet", RECORDS[4:])
    (tmp_path / "README.md").write_text("not data", encoding="utf-8")
    assert replies(DatasetSection(path=str(tmp_path))) == ["0", "1", "2", "3", "4"]


def test_an_empty_folder_and_an_unknown_file_type_are_user_errors(tmp_path):
    with pytest.raises(RuntimeUserError, match="no data files in"):
        dataset_conversations(DatasetSection(path=str(tmp_path)))
    (tmp_path / "d.xlsx").write_bytes(b"")
    with pytest.raises(RuntimeUserError, match=r"unsupported file type '\.xlsx'"):
        dataset_conversations(DatasetSection(path=str(tmp_path / "d.xlsx")))


def test_a_byte_order_mark_from_a_spreadsheet_export_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("instruction,input,output\nSay 1.,,1\n", encoding="utf-8-sig")
    assert replies(DatasetSection(path=str(path))) == ["1"]


def test_csv_row_with_more_cells_than_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("instruction,input,output\nSay 1.,,1\nSay 2.,,2,extra\n", encoding="utf-8")
    with pytest.raises(RuntimeUserError, match=r"d\.csv line 3: more cells than the header"):
        dataset_conversations(DatasetSection(path=str(path)))


def test_a_save_to_disk_folder_and_a_dataset_dict_split(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(RECORDS).save_to_disk(str(tmp_path / "saved"))
    assert replies(DatasetSection(path=str(tmp_path / "saved"))) == ["0", "1", "2", "3", "4"]

    splits = DatasetDict({"train": Dataset.from_list(RECORDS[:3]), "test": Dataset.from_list(RECORDS[3:])})
    splits.save_to_disk(str(tmp_path / "splits"))
    assert replies(DatasetSection(path=str(tmp_path / "splits"), split="test")) == ["3", "4"]
    with pytest.raises(RuntimeUserError, match="has no split 'validation'") as caught:
        replies(DatasetSection(path=str(tmp_path / "splits"), split="validation"))
    assert "train, test" in caught.value.hint


def test_a_hub_id_goes_through_load_dataset_with_split_and_revision(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, split, revision, streaming):
        calls.append((path, split, revision, streaming))
        return iter([{"text": "first"}, {"text": ""}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = DatasetSection(path="someone/corpus", format="text", split="validation", revision="v1.0")
    records = list(islice(dataset_records(hub, streaming=True), 1))
    assert records == [("someone/corpus [validation] record 0", {"text": "first"})]
    assert calls == [("someone/corpus", "validation", "v1.0", True)]
    with pytest.raises(RuntimeUserError, match=r"someone/corpus \[validation\] record 1: 'text' is empty"):
        load_texts(DataSection(datasets=[hub]))


def test_a_hub_failure_is_one_user_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeUserError, match="hub dataset 'someone/corpus' .* could not be loaded: no network"):
        dataset_records(DatasetSection(path="someone/corpus"))


def test_a_path_spelled_as_a_file_is_never_taken_for_a_hub_id(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("went to the hub"))
    with pytest.raises(RuntimeUserError, match="not found"):
        dataset_records(DatasetSection(path="data/missing.jsonl"))


# --- laziness -------------------------------------------------------------------------------------


class CountingRaw(io.RawIOBase):
    """A raw file that counts the bytes read through it."""

    def __init__(self, file, counter):
        self.file, self.counter = file, counter

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self.file.seek(offset, whence)

    def tell(self):
        return self.file.tell()

    def readinto(self, buffer):
        count = self.file.readinto(buffer)
        self.counter["bytes"] += count or 0
        return count

    def close(self):
        self.file.close()
        super().close()


@pytest.fixture
def bytes_read(monkeypatch):
    """The readers open files through `open`; count what they read."""
    counter = {"bytes": 0}

    def counting_open(file, mode="r", encoding=None, newline=None):
        buffered = io.BufferedReader(CountingRaw(builtins.open(file, "rb", buffering=0), counter))
        return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding=encoding, newline=newline)

    monkeypatch.setattr(data_files, "open", counting_open, raising=False)
    return counter


LARGE = 40_000  # records of ~250 bytes: a 10 MB file


def large_records():
    return ({"instruction": f"Record {n}.", "input": "x" * 200, "output": str(n)} for n in range(LARGE))


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("big.jsonl", write_jsonl),
        ("big.csv", write_csv),
        ("big.parquet", lambda path, records: write_parquet(path, list(records), row_group_size=1000)),
    ],
)
def test_taking_the_first_records_of_a_large_file_reads_only_its_beginning(tmp_path, bytes_read, name, write):
    path = write(tmp_path / name, large_records()) or tmp_path / name
    first = list(islice(dataset_records(DatasetSection(path=str(path))), 3))
    assert [record["output"] for _, record in first] == ["0", "1", "2"]
    assert 0 < bytes_read["bytes"] < path.stat().st_size / 20  # a row group (or a buffer), not the file

    bytes_read["bytes"] = 0
    sample = dataset_conversations(DatasetSection(path=str(path), max_samples=3))
    assert len(sample) == 3 and bytes_read["bytes"] < path.stat().st_size / 20
