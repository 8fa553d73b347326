"""Raw records from local data files: one file, or a folder of them (`save_to_disk` folders and the hub are
read by the runtime, `ftc.runtime.data.sources`, which has `datasets`).

Every reader is a generator of `(where, record)`, where `where` is how a person finds the record
(file and line, or file and index). They are lazy so that memory stays flat on large files and
`max_samples` stops reading early: JSONL, CSV and text go line by line, Parquet row group by row group.
A JSON list is one document and is parsed whole.

Under the JSON, JSONL and CSV readers are `*_entries` generators that give an unreadable record as its
error and read on: `ftc.records.check` reports every bad record at once, the runtime stops at the first.
No reader here imports torch or `datasets`; Parquet needs pyarrow.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from ftc.errors import RuntimeUserError
from ftc.spec.models import DatasetSection
from ftc.spec.resolve import names_a_local_path

Records = Iterator[tuple[str, Any]]
# A reader's records where a record that could not be read is the error saying why, in its place: `ftc launch`
# and `ftc validate --data` read on past it to report every bad record; the runtime raises the first.
Entries = Iterator[tuple[str, Any]]
# Files `Dataset.save_to_disk` writes: a Dataset folder holds state.json, a DatasetDict folder dataset_dict.json.
SAVED_DATASET_MARKERS = ("state.json", "dataset_dict.json")
TEXT_ENCODING = "utf-8-sig"  # UTF-8, with the byte-order mark spreadsheet exports put first dropped


def dataset_source(dataset: DatasetSection) -> Literal["hub", "saved", "files"]:
    """Where a dataset lives: the hub, a `save_to_disk` folder, or data files (one, or a folder of them)."""
    path = Path(dataset.path)
    if not (path.exists() or names_a_local_path(dataset.path)):
        return "hub"
    if path.is_dir() and any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS):
        return "saved"
    return "files"


def dataset_files(dataset: DatasetSection) -> list[Path]:
    """The data files of a dataset whose source is "files", in the order they are read."""
    path = Path(dataset.path)
    if path.is_dir():
        return folder_files(path)
    if not path.exists():
        raise RuntimeUserError(f"dataset {path} not found", "data.datasets.path must be an existing file or folder")
    return [path]


def file_reader(path: Path) -> Callable[[Path], Records]:
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise RuntimeUserError(
            f"{path}: unsupported file type {path.suffix!r}", f"give a file ending in {', '.join(FILE_READERS)}"
        )
    return reader


def folder_files(folder: Path) -> list[Path]:
    """The data files directly in `folder`, in name order (shards named 00000, 00001, ... stay in order)."""
    files = sorted(file for file in folder.iterdir() if file.is_file() and file.suffix.lower() in FILE_READERS)
    if not files:
        raise RuntimeUserError(
            f"no data files in {folder}", f"put {', '.join(FILE_READERS)} files there, or a Dataset.save_to_disk folder"
        )
    return files


def records_of_files(files: list[Path]) -> Records:
    readers = [file_reader(file) for file in files]  # every file type checked before the first record is read
    for file, reader in zip(files, readers, strict=True):
        yield from reader(file)


def file_entries(file: Path) -> Entries:
    """Every record of one file, a record that cannot be read given as its error; a file that cannot be read
    at all (unknown type, not Parquet, not UTF-8) is one error."""
    try:
        entries = ENTRY_READERS.get(file.suffix.lower())
        if entries is not None:
            yield from entries(file)
        else:
            yield from file_reader(file)(file)  # raises for an unknown type; Parquet raises for a damaged file
    except RuntimeUserError as error:
        yield str(file), error
    except UnicodeDecodeError as error:
        message = f"{file}: not UTF-8 text ({error.reason} at byte {error.start})"
        yield str(file), RuntimeUserError(message, "save the file as UTF-8")


def _raise_first(entries: Entries) -> Records:
    for where, entry in entries:
        if isinstance(entry, RuntimeUserError):
            raise entry
        yield where, entry


def jsonl_entries(file: Path) -> Entries:
    with open(file, encoding=TEXT_ENCODING) as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                where = f"{file} line {number}"
                yield where, _parse_entry(line, where)


def jsonl_records(file: Path) -> Records:
    return _raise_first(jsonl_entries(file))


def json_entries(file: Path) -> Entries:
    """A JSON list of records; a .json file whose first line is a whole object is JSON Lines under another name."""
    with open(file, encoding=TEXT_ENCODING) as text:
        if _is_an_object(text.readline()):
            yield from jsonl_entries(file)
            return
        text.seek(0)
        records = _parse_entry(text.read(), str(file))
    if isinstance(records, RuntimeUserError):
        yield str(file), records
    elif not isinstance(records, list):
        hint = "wrap the records in [ ... ], or use JSONL"
        yield str(file), RuntimeUserError(f"{file}: expected a JSON list of records", hint)
    else:
        for index, record in enumerate(records):
            yield f"{file} record {index}", record


def json_records(file: Path) -> Records:
    return _raise_first(json_entries(file))


def csv_entries(file: Path) -> Entries:
    """A header row names the columns; every value is text (a kto label reads "true"/"false")."""
    with open(file, encoding=TEXT_ENCODING, newline="") as text:
        rows = csv.DictReader(text)
        for row in rows:
            where = f"{file} line {rows.line_num}"
            if None in row:  # DictReader's key for cells beyond the header
                message = f"{where}: more cells than the header has columns"
                yield where, RuntimeUserError(message, "fix the row's quoting")
            else:
                yield where, row


def csv_records(file: Path) -> Records:
    return _raise_first(csv_entries(file))


def parquet_records(file: Path) -> Records:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(file, "rb") as raw:
        try:
            parquet = pq.ParquetFile(raw, pre_buffer=False)  # pre-buffering would fetch every row group up front
            groups = (parquet.read_row_group(group) for group in range(parquet.num_row_groups))
            rows = (row for group in groups for row in group.to_pylist())
            for index, record in enumerate(rows):
                yield f"{file} record {index}", record
        except pa.ArrowException as error:
            raise RuntimeUserError(f"{file}: not a readable Parquet file: {error}", "rewrite the file") from None


def txt_records(file: Path) -> Records:
    """Plain text, one record {"text": line} per non-empty line (the `text` format's field)."""
    with open(file, encoding=TEXT_ENCODING) as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield f"{file} line {number}", {"text": line.rstrip("\n")}


FILE_READERS: dict[str, Callable[[Path], Records]] = {
    ".jsonl": jsonl_records,
    ".json": json_records,
    ".csv": csv_records,
    ".parquet": parquet_records,
    ".txt": txt_records,
}
# The readers that can read on past a bad record; the others have none but whole-file errors.
ENTRY_READERS: dict[str, Callable[[Path], Entries]] = {
    ".jsonl": jsonl_entries,
    ".json": json_entries,
    ".csv": csv_entries,
}


def _is_an_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def _parse_entry(text: str, where: str) -> Any:
    """The parsed JSON, or the error that says where it breaks (a record cut short says so)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # The text ended while a value was still open: a string is blamed where it starts, the rest at the end.
        cut = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        what = f"it ends mid-record, is the file truncated? ({error})" if cut else str(error)
        return RuntimeUserError(f"{where}: invalid JSON: {what}", "fix the JSON syntax there")
