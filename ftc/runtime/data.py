"""Read the spec's datasets from local JSON / JSONL files into conversations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftc.chat_templates import Message
from ftc.runtime.errors import RuntimeUserError
from ftc.runtime.formats import FORMATS, BadRecord
from ftc.spec.models import DataSection, DatasetSection

DATA_SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class Conversation:
    where: str  # file and position, so a later error (a template refusing it) can still point at the record
    messages: list[Message]


def load_conversations(data: DataSection) -> list[Conversation]:
    """Every dataset's conversations, in the order the spec lists them (the trainer shuffles)."""
    conversations: list[Conversation] = []
    for dataset in data.datasets:
        conversations += dataset_conversations(dataset)
    return conversations


def dataset_conversations(dataset: DatasetSection) -> list[Conversation]:
    data_format = FORMATS.get(dataset.format)
    if data_format is None:
        raise RuntimeUserError(
            f"data format {dataset.format!r} is not supported yet by the runtime",
            f"convert {dataset.path} to one of: {', '.join(FORMATS)}",
        )
    conversations = []
    for where, record in dataset_records(dataset):
        if dataset.max_samples is not None and len(conversations) == dataset.max_samples:
            break
        try:
            conversations.append(Conversation(where, data_format.to_messages(record)))
        except BadRecord as error:
            raise RuntimeUserError(f"{where}: {error}", f"{dataset.format} records hold {data_format.fields}") from None
    if not conversations:
        raise RuntimeUserError(f"dataset {dataset.path} has no records", "point data.datasets.path at a non-empty file")
    return conversations


def dataset_records(dataset: DatasetSection) -> Iterator[tuple[str, Any]]:
    """(where, record) for every raw record of one dataset: the one reader every format and stage uses."""
    yield from _records(_data_files(dataset.path))


def _data_files(path: str) -> list[Path]:
    # The split only names hub splits; a local file or folder is read whole.
    where = Path(path)
    if where.is_dir():
        files = sorted(file for file in where.iterdir() if file.suffix in DATA_SUFFIXES)
        if not files:
            raise RuntimeUserError(f"no .json or .jsonl files in {where}", "put the dataset files in that folder")
        return files
    if not where.exists():
        raise RuntimeUserError(
            f"dataset {path} not found",
            "data.datasets.path must be a local JSON/JSONL file or folder; hub datasets are not supported yet",
        )
    if where.suffix not in DATA_SUFFIXES:
        raise RuntimeUserError(f"{where}: unsupported file type {where.suffix!r}", "give a .json or .jsonl file")
    return [where]


def _records(files: list[Path]) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record; `where` is how a person finds it: list index or line number."""
    for file in files:
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".jsonl":
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    yield f"{file} line {number}", _parse(line, f"{file} line {number}")
            continue
        records = _parse(text, str(file))
        if not isinstance(records, list):
            raise RuntimeUserError(f"{file}: expected a JSON list of records", "wrap the records in [ ... ]")
        for index, record in enumerate(records):
            yield f"{file} record {index}", record


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RuntimeUserError(f"{where}: invalid JSON: {error}", "fix the JSON syntax there") from None
