"""Data formats: how one record of a dataset becomes a conversation.

One registry, `FORMATS`, of small records: format name → a function from a record to messages.
A function raises `BadRecord` with what is wrong; the reader adds the file and the position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftc.chat_templates import Message


class BadRecord(ValueError):
    """A record that does not fit its format; the message says which field and why."""


@dataclass(frozen=True)
class DataFormat:
    name: str
    to_messages: Callable[[Any], list[Message]]
    fields: str  # shown in hints


def _text(record: dict, key: str, required: bool = True) -> str:
    if key not in record or record[key] is None:
        if required:
            raise BadRecord(f"missing {key!r}")
        return ""
    if not isinstance(record[key], str):
        raise BadRecord(f"{key!r} must be a string, not {type(record[key]).__name__}")
    return record[key]


def _history(record: dict) -> list[Message]:
    history = record.get("history") or []
    if not isinstance(history, list):
        raise BadRecord("'history' must be a list of [user, assistant] pairs")
    messages: list[Message] = []
    for turn, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(text, str) for text in pair)):
            raise BadRecord(f"'history' turn {turn} must be a pair of strings [user, assistant]")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return messages


def alpaca_to_messages(record: Any) -> list[Message]:
    """instruction (+ "\\n\\n" + input) is the user turn, output the reply; system and history are optional."""
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, found {type(record).__name__}")
    instruction, output = _text(record, "instruction"), _text(record, "output")
    prompt = "\n\n".join(part for part in (instruction, _text(record, "input", required=False)) if part)
    if not prompt:
        raise BadRecord("'instruction' and 'input' are both empty")
    system = _text(record, "system", required=False)
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    return messages + _history(record) + [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def _build_registry(*formats: DataFormat) -> dict[str, DataFormat]:
    return {data_format.name: data_format for data_format in formats}


FORMATS: dict[str, DataFormat] = _build_registry(
    DataFormat("alpaca", alpaca_to_messages, "instruction, input, output (+ optional system, history)"),
)
