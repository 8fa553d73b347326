"""Named datasets: an LLaMA-Factory data folder's dataset_info.json read as ftc dataset entries.

Such a registry maps a name to where the records are (a file beside it or a hub id), how they are
shaped (`formatting` alpaca or sharegpt, `ranking` for pairs, a `kto_tag` column for labels), the
file's column names and, for conversations, the keys and speaker names of each turn (`tags`). One
entry becomes one `[[data.datasets]]` table: path, format and column mapping in ftc's own terms.
The kind of example the stage trains on decides the format, as it does in LLaMA-Factory: a pt run
reads an alpaca entry's prompt column as plain text.

Pure: the caller reads the JSON file; this module only turns its entries into tables, or says,
per entry and key, why it cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftc.stages import DataKind

# LF's column roles → ours, by the format they end up in; a role absent here has no place in that format.
_ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
_ALPACA_COLUMNS |= {"history": "history"}
_PAIR_COLUMNS = {"prompt": "instruction", "query": "input", "system": "system", "history": "history"}
_PAIR_COLUMNS |= {"chosen": "chosen", "rejected": "rejected"}
_ALPACA_KTO_COLUMNS = {"prompt": "instruction", "query": "input", "response": "completion", "system": "system"}
_ALPACA_KTO_COLUMNS |= {"history": "history", "kto_tag": "label"}
_SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools"}
_MESSAGES_COLUMNS = {"messages": "messages", "tools": "tools"}
_SHAREGPT_PAIR_COLUMNS = {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}
_SHAREGPT_KTO_COLUMNS = {"messages": "messages", "kto_tag": "label"}
# LF's default column names where an entry does not say.
_DEFAULT_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "messages": "conversations"}
_DEFAULT_COLUMNS |= {"kto_tag": "kto_tag"}
# Images, videos and audio ride beside the text in LF's multimodal entries.
_MEDIA_COLUMNS = ("images", "videos", "audios")

# The two turn shapes ftc reads: ShareGPT's {from, value} and OpenAI's {role, content}, with the speaker names
# each accepts for a role (ftc.records.formats.SHAREGPT_ROLES and ROLES).
_SHAREGPT_SPEAKERS = {
    "user_tag": ("human", "user"),
    "assistant_tag": ("gpt", "assistant"),
    "system_tag": ("system",),
    "observation_tag": ("observation", "tool"),
    "function_tag": ("function_call",),
}
_OPENAI_SPEAKERS = {
    "user_tag": ("user",),
    "assistant_tag": ("assistant",),
    "system_tag": ("system",),
    "observation_tag": ("tool",),
    "function_tag": (),
}
_TAG_DEFAULTS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
_TAG_DEFAULTS |= {"observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}

# Keys of an entry that have no place in a dataset table, with why.
_REFUSED_KEYS = {
    "ms_hub_url": "ftc reads local files and Hugging Face hub ids, not ModelScope",
    "om_hub_url": "ftc reads local files and Hugging Face hub ids, not Modelers",
    "script_url": "ftc runs no dataset loading scripts",
    "cloud_file_name": "ftc reads no cloud storage paths; download the file and give file_name",
    "subset": "ftc reads a hub dataset's default configuration only",
    "folder": "ftc reads a hub dataset's files from its root only",
}
_KNOWN_KEYS = {"file_name", "hf_hub_url", "formatting", "ranking", "split", "num_samples", "columns", "tags"}


class RegistryEntryError(ValueError):
    """An entry ftc cannot read as written; `key` is the entry's key to blame ("" for the entry)."""

    def __init__(self, name: str, key: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.name, self.key, self.message, self.hint = name, key, message, hint


@dataclass(frozen=True)
class NamedDataset:
    """One registry entry as a dataset table, and where its local file is relative to the registry."""

    table: dict[str, Any]
    local: bool  # table["path"] is relative to the registry's folder


def registry_dataset(info: Mapping[str, Any], name: str, kind: DataKind) -> NamedDataset:
    """The `[[data.datasets]]` table for `name` in a registry, for a stage that trains on `kind` examples."""
    entry = info.get(name)
    if entry is None:
        close = sorted(info)[:8]
        raise RegistryEntryError(name, "", f"no dataset named {name!r} in the registry", f"known: {', '.join(close)}")
    if not isinstance(entry, Mapping):
        raise RegistryEntryError(name, "", f"entry {name!r} is not an object", "describe it with file_name, ...")

    def refuse(key: str, message: str, hint: str) -> RegistryEntryError:
        return RegistryEntryError(name, key, message, hint)

    for key in entry:
        if key in _REFUSED_KEYS:
            raise refuse(key, f"{key}: {_REFUSED_KEYS[key]}", "give file_name or hf_hub_url instead")
        if key not in _KNOWN_KEYS:
            raise refuse(key, f"{key!r} is no key of a dataset entry", f"known: {', '.join(sorted(_KNOWN_KEYS))}")
    table: dict[str, Any] = {}
    if isinstance(entry.get("file_name"), str) and entry["file_name"]:
        table["path"], local = entry["file_name"], True
    elif isinstance(entry.get("hf_hub_url"), str) and entry["hf_hub_url"]:
        table["path"], local = entry["hf_hub_url"], False
    else:
        raise refuse("", f"entry {name!r} names no file_name or hf_hub_url", "give one of them")
    split = entry.get("split", "train")
    if not isinstance(split, str) or not split:
        raise refuse("split", "split must be a name such as 'train'", "write it as a string")
    if split != "train":
        table["split"] = split
    samples = entry.get("num_samples")
    if samples is not None:
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise refuse("num_samples", "num_samples must be a whole number above 0", "or remove it")
        table["max_samples"] = samples
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise refuse("formatting", f"formatting {formatting!r} is neither alpaca nor sharegpt", "use one of them")
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise refuse("ranking", "ranking must be true or false", "write it unquoted")
    columns = _string_map(entry.get("columns", {}), "columns", refuse)
    tags = _string_map(entry.get("tags", {}), "tags", refuse)
    for media in _MEDIA_COLUMNS:
        if media in columns:
            raise refuse(f"columns.{media}", f"{media}: ftc trains on text only", "use an entry without media")
    if formatting == "alpaca" and tags:
        raise refuse("tags", "tags name the keys of sharegpt turns; this entry is alpaca", "remove them")
    format_name, ours = _format_and_columns(name, kind, formatting, ranking, columns, tags, refuse)
    table["format"] = format_name
    mapping = {}
    for theirs_role, our_field in ours.items():
        column = columns.get(theirs_role, _DEFAULT_COLUMNS.get(theirs_role, theirs_role))
        if column != our_field:
            mapping[our_field] = column
    for role in columns:
        if role not in ours:
            raise refuse(
                f"columns.{role}",
                f"column {role!r} has no field in ftc's {format_name!r} format, which this entry reads as",
                f"the {format_name!r} format reads: {', '.join(ours)}",
            )
    if mapping:
        table["columns"] = mapping
    return NamedDataset(table, local)


def _string_map(value: Any, key: str, refuse) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise refuse(key, f"{key} must map names to column names (strings)", f'e.g. "{key}": {{"prompt": "question"}}')
    return dict(value)


def _format_and_columns(
    name: str, kind: DataKind, formatting: str, ranking: bool, columns: dict, tags: dict, refuse
) -> tuple[str, dict[str, str]]:
    """ftc's format for the entry and its LF column roles → our field names."""
    labelled = "kto_tag" in columns
    if kind == "text":
        if formatting != "alpaca" or ranking:
            raise refuse("formatting", "a pt stage reads plain text: an alpaca entry's prompt column", "use one")
        return "text", {"prompt": "text"}
    if ranking and kind != "preference":
        raise refuse("ranking", f"a ranking entry holds pairs, but this stage trains on {kind} examples", "")
    if kind == "preference" and not ranking:
        raise refuse("ranking", "this stage trains on chosen/rejected pairs, and the entry is not ranking", "")
    if kind == "kto" and not labelled:
        raise refuse("columns", "this stage trains on labelled replies, and the entry has no kto_tag column", "")
    if formatting == "alpaca":
        if kind == "preference":
            return "preference", _PAIR_COLUMNS
        if kind == "kto":
            return "kto", _ALPACA_KTO_COLUMNS
        return "alpaca", _ALPACA_COLUMNS
    shape = _turn_shape(tags, refuse)
    if kind == "preference":
        return "preference", _SHAREGPT_PAIR_COLUMNS
    if kind == "kto":
        return "kto", _SHAREGPT_KTO_COLUMNS
    if shape == "openai":
        if "system" in columns:
            raise refuse("columns.system", "OpenAI-style messages hold the system turn among them", "remove it")
        return "messages", _MESSAGES_COLUMNS
    return "sharegpt", _SHAREGPT_COLUMNS


def _turn_shape(tags: dict[str, str], refuse) -> str:
    """ShareGPT's {from, value} or OpenAI's {role, content}, with speaker names ftc reads as the tags name them."""
    for tag in tags:
        if tag not in _TAG_DEFAULTS:
            raise refuse(f"tags.{tag}", f"{tag!r} is no tag of a sharegpt entry", f"known: {', '.join(_TAG_DEFAULTS)}")
    written = _TAG_DEFAULTS | tags
    keys = (written["role_tag"], written["content_tag"])
    if keys == ("from", "value"):
        shape, speakers = "sharegpt", _SHAREGPT_SPEAKERS
    elif keys == ("role", "content"):
        shape, speakers = "openai", _OPENAI_SPEAKERS
    else:
        raise refuse(
            "tags.role_tag",
            f"turns keyed {keys[0]!r}/{keys[1]!r}: ftc reads turns as {{from, value}} or {{role, content}}",
            "rename the keys in the file, or convert it to one of the two",
        )
    # Only the tags written are checked: LF's speaker defaults are ShareGPT's, which {role, content} files rename.
    for tag, accepted in speakers.items():
        if tag in tags and tags[tag] not in accepted:
            readable = " or ".join(map(repr, accepted)) or "no such speaker (tool calls ride on assistant turns)"
            raise refuse(
                f"tags.{tag}",
                f"speaker {tags[tag]!r} for {tag}: ftc reads {readable} in such turns",
                "rename the speakers in the file",
            )
    return shape
