"""Configs written the way LLaMA-Factory and Axolotl users write them, imported, validated and planned."""

from __future__ import annotations

import json
from pathlib import Path

from ftc.compiler import compile_plan, parse_hardware
from ftc.importers import Imported, import_config
from ftc.models.lookup import architecture_for
from ftc.spec import load_spec

BASE = "meta-llama/Meta-Llama-3-8B-Instruct"  # a hub model the registry knows: planned with no download

# An LF data folder in LF's documented layout: every field an entry can hold, across the shapes of data.
DATASET_INFO = {
    "hello_alpaca": {
        "file_name": "hello_alpaca.json",
        "formatting": "alpaca",
        "columns": {"prompt": "ask", "query": "detail", "response": "reply", "system": "sys", "history": "past"},
    },
    "notes_text": {"file_name": "notes.jsonl", "columns": {"prompt": "body"}},
    "talks": {
        "file_name": "talks.json",
        "formatting": "sharegpt",
        "columns": {"messages": "turns", "system": "sys", "tools": "functions"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "observation_tag": "observation",
            "function_tag": "function_call",
            "system_tag": "system",
        },
    },
    "openai_chats": {
        "file_name": "openai_chats.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "dialog"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    },
    "pairs": {
        "file_name": "pairs.json",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "better", "rejected": "worse"},
    },
    "alpaca_pairs": {
        "file_name": "alpaca_pairs.json",
        "ranking": True,
        "columns": {"prompt": "question", "chosen": "good", "rejected": "bad"},
    },
    "verdicts": {
        "file_name": "verdicts.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "thumbs_up"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    },
    "hub_mix": {"hf_hub_url": "someone/their-instructions", "split": "validation", "num_samples": 300},
}

# A record of each file, in the file's own column names: what ftc's readers parse after the mapping.
RECORDS = {
    "hello_alpaca.json": [{"ask": "Name a colour", "detail": "", "reply": "Blue", "sys": "Be brief", "past": []}],
    "notes.jsonl": [{"body": "Rivers run to the sea."}],
    "talks.json": [
        {"turns": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}], "sys": "", "functions": ""}
    ],
    "openai_chats.jsonl": [{"dialog": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}],
    "pairs.json": [
        {
            "conversations": [{"from": "human", "value": "Capital of France?"}],
            "better": {"from": "gpt", "value": "Paris"},
            "worse": {"from": "gpt", "value": "Lyon"},
        }
    ],
    "alpaca_pairs.json": [{"question": "Capital of Italy?", "good": "Rome", "bad": "Milan"}],
    "verdicts.json": [
        {
            "messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}],
            "thumbs_up": True,
        }
    ],
}


def write_data_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in RECORDS.items():
        text = "\n".join(json.dumps(r) for r in records) if name.endswith(".jsonl") else json.dumps(records)
        (folder / name).write_text(text + "\n", encoding="utf-8")
    info = folder / "dataset_info.json"
    info.write_text(json.dumps(DATASET_INFO, indent=2), encoding="utf-8")
    return info


def imported(tmp_path: Path, tool: str, config: str, world_size: int = 1, name: str = "config.yaml") -> Imported:
    """Write the config, import it beside a data folder, write the spec: what `ftc import` does."""
    write_data_folder(tmp_path / "data")
    source = tmp_path / name
    source.write_text(config, encoding="utf-8")
    output = tmp_path / "job.toml"
    result = import_config(tool, source, output, world_size=world_size)
    output.write_text(result.text, encoding="utf-8")
    return result


def planned(tmp_path: Path, hardware: str):
    """The written spec, loaded as `ftc plan` loads it, and its plan on `hardware`."""
    loaded = load_spec(tmp_path / "job.toml")
    arch = architecture_for(loaded.spec, loaded.base_dir)
    return loaded.spec, compile_plan(loaded.spec, parse_hardware(hardware), arch)


def unmapped_keys(result: Imported) -> dict[str, str]:
    return {key: why for key, _, why in result.job.unmapped}
