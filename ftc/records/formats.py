"""Data formats: how one record of a dataset becomes what a stage trains on.

One registry, `FORMATS`, of small records: format name → what kind of example it makes and a
function from a record to that example's parts. A function raises `BadRecord` with what is wrong,
in the file's own column names; the reader adds the file and the position.

The fields each format reads are the spec's `FORMAT_FIELDS`, so that `[data.datasets.columns]`
can be checked when the spec is validated. This module is pure: no torch, no datasets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from ftc.spec.chat_templates import IMAGE, Message
from ftc.spec.models import FORMAT_FIELDS

Kind = Literal["conversation", "preference", "kto", "text"]
ROLES = ("system", "user", "assistant", "tool")
_PLAIN_ROLES = frozenset(("system", "user", "assistant"))  # a tool result carries more than its text
# ShareGPT speakers → roles; function_call and observation are a tool call and its result.
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
# The speakers whose turn is its text as is (a function_call's value is JSON to parse).
_PLAIN_SHAREGPT_ROLES = {speaker: role for speaker, role in SHAREGPT_ROLES.items() if speaker != "function_call"}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")  # labels as a CSV file spells them


class BadRecord(ValueError):
    """A record that does not fit its format; the message says which field and why."""


@dataclass(frozen=True)
class Chat:
    """What a conversation format makes of a record."""

    messages: list[Message]
    tools: list[dict[str, Any]] | None = None  # OpenAI function definitions, for templates that render tools
    # Image files, as the record names them, in the order of the IMAGE placeholders in `messages`.
    images: tuple[str, ...] = ()

    def parts(self) -> tuple[list[Message], list[dict[str, Any]] | None]:
        return self.messages, self.tools


class Record:
    """One raw record seen through the spec's column mapping: read by our field names, blamed by the file's."""

    def __init__(self, raw: Any, columns: Mapping[str, str]) -> None:
        if not isinstance(raw, dict):
            raise BadRecord(f"expected an object with named fields, found {type(raw).__name__}")
        self.raw = raw
        self.columns = columns

    def column(self, field: str) -> str:
        return self.columns.get(field, field)

    def has(self, field: str) -> bool:
        return self.raw.get(self.column(field)) is not None

    def get(self, field: str) -> Any:
        if not self.has(field):
            raise BadRecord(f"missing {self.column(field)!r}")
        return self.raw[self.column(field)]

    def text(self, field: str, required: bool = True) -> str:
        value = self.raw.get(self.columns.get(field, field))  # once per field of every record: kept to one lookup
        if value is None:
            if required:
                raise BadRecord(f"missing {self.column(field)!r}")
            return ""
        if not isinstance(value, str):
            raise BadRecord(f"{self.column(field)!r} must be a string, not {type(value).__name__}")
        return value


# --- conversations -------------------------------------------------------------------------------


def _history(record: Record) -> list[Message]:
    if not record.has("history"):
        return []
    history, name = record.get("history"), record.column("history")
    if not isinstance(history, list):
        raise BadRecord(f"{name!r} must be a list of [user, assistant] pairs")
    messages: list[Message] = []
    for turn, pair in enumerate(history):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(text, str) for text in pair)):
            raise BadRecord(f"{name!r} turn {turn} must be a pair of strings [user, assistant]")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return messages


def alpaca_prompt(record: Record) -> list[Message]:
    """system, history, then instruction (+ "\\n\\n" + input) as the last user turn."""
    instruction, extra = record.text("instruction"), record.text("input", required=False)
    prompt = f"{instruction}\n\n{extra}" if instruction and extra else instruction or extra
    if not prompt:
        raise BadRecord(f"{record.column('instruction')!r} and {record.column('input')!r} are both empty")
    system = record.text("system", required=False)
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    history = _history(record)
    if history:
        messages += history
    messages.append({"role": "user", "content": prompt})
    return messages


def alpaca_to_chat(record: Record) -> Chat:
    """instruction (+ "\\n\\n" + input) is the user turn, output the reply; system and history are optional."""
    output = record.text("output")
    if not output.strip():  # how a CSV file spells a missing cell
        raise BadRecord(f"{record.column('output')!r} is empty")
    return _with_images(record, Chat(alpaca_prompt(record) + [{"role": "assistant", "content": output}]))


def _with_images(record: Record, chat: Chat) -> Chat:
    """The record's `images`, each matched to an IMAGE placeholder in the text. A record whose text has no
    placeholder gets one per image at the start of its first user turn."""
    if not record.has("images"):
        return chat
    images, name = record.get("images"), record.column("images")
    if not isinstance(images, list) or not all(isinstance(path, str) and path.strip() for path in images):
        raise BadRecord(f"{name!r} must be a list of image file paths")
    texts = [message["content"] for message in chat.messages if isinstance(message.get("content"), str)]
    placed = sum(text.count(IMAGE) for text in texts)
    if placed == 0 and images:
        first = next((i for i, message in enumerate(chat.messages) if message["role"] == "user"), None)
        if first is None:
            raise BadRecord(f"{name!r} names {len(images)} image(s), but there is no user turn to put them in")
        messages = list(chat.messages)
        messages[first] = {**messages[first], "content": IMAGE * len(images) + messages[first]["content"]}
        return Chat(messages, chat.tools, tuple(images))
    if placed != len(images):
        raise BadRecord(
            f"{name!r} names {len(images)} image(s), but the text has {placed} {IMAGE} placeholder(s): "
            "one placeholder per image, in order (or none, to put them all before the first user turn)"
        )
    return Chat(chat.messages, chat.tools, tuple(images))


def _content(message: dict, where: str) -> str:
    """OpenAI content: a string, or a list of parts of which the text ones count."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if content is None and message.get("role") == "assistant" and message.get("tool_calls"):
        return ""  # a turn that only calls tools
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        if any(part.get("type") != "text" or not isinstance(part.get("text"), str) for part in content):
            raise BadRecord(f"{where} has a content part that is not text; only text is supported")
        return "".join(part["text"] for part in content)
    raise BadRecord(f"{where} needs a string 'content', found {type(content).__name__}")


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI tool calls, with arguments as a dict: what chat templates that know tools expect."""
    if not isinstance(calls, list) or not calls:
        raise BadRecord(f"{where} 'tool_calls' must be a non-empty list")
    parsed = []
    for index, call in enumerate(calls):
        function = call.get("function", call) if isinstance(call, dict) else None
        if not (isinstance(function, dict) and isinstance(function.get("name"), str)):
            raise BadRecord(f"{where} tool call {index} needs a 'function' with a string 'name'")
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                raise BadRecord(f"{where} tool call {index}: 'arguments' is not valid JSON") from None
        if not isinstance(arguments, dict):
            raise BadRecord(f"{where} tool call {index}: 'arguments' must be an object")
        entry: dict[str, Any] = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
        if isinstance(call, dict) and isinstance(call.get("id"), str):
            entry["id"] = call["id"]
        parsed.append(entry)
    return parsed


def parse_messages(value: Any, name: str) -> list[Message]:
    """OpenAI-style [{role, content}, ...] with system turns, assistant tool_calls and tool results."""
    if not isinstance(value, list) or not value:
        raise BadRecord(f"{name!r} must be a non-empty list of messages")
    messages: list[Message] = []
    for index, raw in enumerate(value):
        # The usual message, text from a user, an assistant or the system, built inline; others checked in full.
        if type(raw) is dict and raw.get("role") in _PLAIN_ROLES and type(raw.get("content")) is str:
            if not (raw["role"] == "assistant" and raw.get("tool_calls")):
                messages.append({"role": raw["role"], "content": raw["content"]})
                continue
        messages.append(checked_message(raw, f"{name!r} message {index}"))
    return messages


def checked_message(raw: Any, where: str) -> Message:
    """One OpenAI-style message, each rule checked in turn so that a broken one is named. A ShareGPT turn
    ({from, value}) is read as its message: LLaMA-Factory's preference and kto files hold such turns."""
    if isinstance(raw, dict) and "role" not in raw and "from" in raw:
        return checked_sharegpt_turn(raw, where)
    if not isinstance(raw, dict):
        raise BadRecord(f"{where} must be an object with 'role' and 'content'")
    role = raw.get("role")
    if role not in ROLES:
        raise BadRecord(f"{where} has role {role!r}; roles are {', '.join(ROLES)}")
    message: Message = {"role": role, "content": _content(raw, where)}
    if role == "assistant" and raw.get("tool_calls"):
        message["tool_calls"] = _tool_calls(raw["tool_calls"], where)
    if role == "tool":
        message.update({key: raw[key] for key in ("tool_call_id", "name") if isinstance(raw.get(key), str)})
    return message


def _needs_a_reply(messages: list[Message], name: str) -> list[Message]:
    if not any(message["role"] == "assistant" for message in messages):
        raise BadRecord(f"{name!r} has no assistant turn to learn from")
    return messages


def _tools(record: Record) -> list[dict[str, Any]] | None:
    """Function definitions: a list, or the JSON text of one (as ShareGPT files keep them)."""
    if not record.has("tools"):
        return None
    tools, name = record.get("tools"), record.column("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else []
        except json.JSONDecodeError:
            raise BadRecord(f"{name!r} is text but not JSON") from None
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise BadRecord(f"{name!r} must be a list of function definitions")
    wrapped = [tool if tool.get("type") == "function" else {"type": "function", "function": tool} for tool in tools]
    for index, tool in enumerate(wrapped):
        if not (isinstance(tool.get("function"), dict) and isinstance(tool["function"].get("name"), str)):
            raise BadRecord(f"{name!r} tool {index} needs a string 'name'")
    return wrapped or None


def messages_to_chat(record: Record) -> Chat:
    name = record.column("messages")
    return _with_images(
        record, Chat(_needs_a_reply(parse_messages(record.get("messages"), name), name), _tools(record))
    )


def checked_sharegpt_turn(turn: Any, where: str) -> Message:
    if not (isinstance(turn, dict) and isinstance(turn.get("value"), str)):
        raise BadRecord(f"{where} must be an object with 'from' and a string 'value'")
    speaker = turn.get("from")
    if speaker not in SHAREGPT_ROLES:
        raise BadRecord(f"{where} is from {speaker!r}; speakers are {', '.join(SHAREGPT_ROLES)}")
    if speaker != "function_call":
        return {"role": SHAREGPT_ROLES[speaker], "content": turn["value"]}
    try:
        call = json.loads(turn["value"])
    except json.JSONDecodeError:
        raise BadRecord(f"{where}: a function_call's value must be JSON with 'name' and 'arguments'") from None
    calls = call if isinstance(call, list) else [call]
    return {"role": "assistant", "content": "", "tool_calls": _tool_calls(calls, where)}


def sharegpt_to_chat(record: Record) -> Chat:
    """conversations: [{from: human/gpt/system/function_call/observation, value}], plus an optional system."""
    turns, name = record.get("conversations"), record.column("conversations")
    if not isinstance(turns, list) or not turns:
        raise BadRecord(f"{name!r} must be a non-empty list of {{from, value}} turns")
    messages: list[Message] = []
    for index, turn in enumerate(turns):
        # The usual turn, built inline (a million records have several million); any other is checked in full.
        role = _PLAIN_SHAREGPT_ROLES.get(turn.get("from")) if type(turn) is dict else None
        value = turn.get("value") if role else None
        if type(value) is str:
            messages.append({"role": role, "content": value})
        else:
            messages.append(checked_sharegpt_turn(turn, f"{name!r} turn {index}"))
    system = record.text("system", required=False)
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return _with_images(record, Chat(_needs_a_reply(messages, name), _tools(record)))


# --- preference and kto: a prompt, then replies --------------------------------------------------


def prompt_messages(record: Record) -> list[Message]:
    """The conversation before the reply, from `messages`, `prompt` (text or messages) or alpaca fields."""
    if record.has("messages"):
        messages = parse_messages(record.get("messages"), record.column("messages"))
    elif record.has("prompt"):
        prompt = record.get("prompt")
        as_text = isinstance(prompt, str)
        messages = [{"role": "user", "content": prompt}] if as_text else parse_messages(prompt, record.column("prompt"))
    elif record.has("instruction"):
        return alpaca_prompt(record)
    else:
        columns = ", ".join(repr(record.column(field)) for field in ("messages", "prompt", "instruction"))
        raise BadRecord(f"no prompt: give one of {columns}")
    if messages[-1]["role"] != "user":
        raise BadRecord("the prompt must end with a user turn")
    return messages


def reply_text(record: Record, field: str) -> str:
    """A reply given as text, as an assistant message, or as a list holding one assistant message."""
    value, name = record.get(field), record.column(field)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and "role" not in value and "from" in value:
        value = checked_sharegpt_turn(value, repr(name))
    if isinstance(value, dict):
        if value.get("role") != "assistant" or not isinstance(value.get("content"), str):
            raise BadRecord(f"{name!r} must be an assistant message with a string 'content'")
        value = value["content"]
    if not isinstance(value, str):
        raise BadRecord(f"{name!r} must be a string or one assistant message")
    return value


def _whole_conversations(record: Record) -> tuple[list[Message], str, str]:
    """chosen and rejected as whole conversations that share everything but the last reply (Anthropic HH's shape)."""
    chosen = parse_messages(record.get("chosen"), record.column("chosen"))
    rejected = parse_messages(record.get("rejected"), record.column("rejected"))
    if chosen[:-1] != rejected[:-1]:
        raise BadRecord(
            f"{record.column('chosen')!r} and {record.column('rejected')!r} differ before their last turn: "
            "without a prompt field, all but the last turn is the prompt they share"
        )
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise BadRecord(
            f"{record.column('chosen')!r} and {record.column('rejected')!r} must end with the assistant reply"
        )
    if not chosen[:-1] or chosen[-2]["role"] != "user":
        raise BadRecord("the prompt must end with a user turn")
    return chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


class Pair(NamedTuple):
    """What a preference record makes: the prompt, the two replies, and the images placed in the prompt's text."""

    prompt: list[Message]
    chosen: str
    rejected: str
    images: tuple[str, ...] = ()


def preference_parts(record: Record) -> Pair:
    has_prompt = any(record.has(field) for field in ("messages", "prompt", "instruction"))
    whole = isinstance(record.raw.get(record.column("chosen")), list) and len(record.get("chosen")) > 1
    if not has_prompt and whole:
        prompt, chosen, rejected = _whole_conversations(record)
    else:
        prompt, chosen, rejected = prompt_messages(record), reply_text(record, "chosen"), reply_text(record, "rejected")
    if chosen == rejected:
        raise BadRecord(f"{record.column('chosen')!r} and {record.column('rejected')!r} are the same reply")
    placed = _with_images(record, Chat(prompt))
    return Pair(placed.messages, chosen, rejected, placed.images)


def _label(record: Record) -> bool:
    value, name = record.get("label"), record.column("label")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise BadRecord(f"{name!r} must be true or false, found {value!r}")


class KtoParts(NamedTuple):
    """What a kto record makes: the prompt, the reply, whether it is desirable, and the images placed in the prompt."""

    prompt: list[Message]
    completion: str
    label: bool
    images: tuple[str, ...] = ()


def kto_parts(record: Record) -> KtoParts:
    if not record.has("completion") and record.has("messages"):
        # The reply as the conversation's last turn, as LLaMA-Factory's kto files keep it.
        messages, name = parse_messages(record.get("messages"), record.column("messages")), record.column("messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2 or messages[-2]["role"] != "user":
            raise BadRecord(
                f"without {record.column('completion')!r}, {name!r} must end with a user turn and the reply"
            )
        prompt, completion = messages[:-1], messages[-1]["content"]
    else:
        prompt, completion = prompt_messages(record), reply_text(record, "completion")
    placed = _with_images(record, Chat(prompt))
    return KtoParts(placed.messages, completion, _label(record), placed.images)


def text_of(record: Record) -> str:
    text = record.text("text")
    if not text.strip():
        raise BadRecord(f"{record.column('text')!r} is empty")
    return text


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFormat:
    name: str
    kind: Kind  # what a stage gets from it: conversations, preference pairs, kto examples or texts
    read: Callable[[Record], Any]  # record → Chat | Pair | KtoParts | text
    fields: str  # shown in hints

    def parse(self, raw: Any, columns: Mapping[str, str]) -> Any:
        return self.read(Record(raw, columns))

    def hint(self, columns: Mapping[str, str]) -> str:
        """What a record of this format holds, under the spec's column mapping: the hint to a bad record."""
        hint = f"{self.name} records hold {self.fields}"
        if columns:
            hint += "; columns mapped: " + ", ".join(f"{ours} = {theirs!r}" for ours, theirs in columns.items())
        return hint


def _build_registry(*formats: DataFormat) -> dict[str, DataFormat]:
    registry = {data_format.name: data_format for data_format in formats}
    assert set(registry) == set(FORMAT_FIELDS), "every spec format has a reader, and no reader lacks a spec name"
    return registry


FORMATS: dict[str, DataFormat] = _build_registry(
    DataFormat(
        "alpaca",
        "conversation",
        alpaca_to_chat,
        "instruction, input, output (+ optional system, history, images)",
    ),
    DataFormat(
        "sharegpt",
        "conversation",
        sharegpt_to_chat,
        "conversations: [{from: human|gpt|system|function_call|observation, value}] (+ optional system, tools, images)",
    ),
    DataFormat(
        "messages",
        "conversation",
        messages_to_chat,
        "messages: [{role: system|user|assistant|tool, content}] (assistant turns may carry tool_calls; "
        "+ optional tools, images)",
    ),
    DataFormat(
        "preference",
        "preference",
        preference_parts,
        "a prompt (messages, prompt, or instruction + input) and chosen, rejected replies; or chosen, rejected "
        "as whole conversations that differ only in the last reply (+ optional images)",
    ),
    DataFormat(
        "kto",
        "kto",
        kto_parts,
        "a prompt (messages, prompt, or instruction + input), completion, label (+ optional images)",
    ),
    DataFormat("text", "text", text_of, "text"),
)


def formats_of(kind: Kind) -> list[str]:
    return [name for name, data_format in FORMATS.items() if data_format.kind == kind]
