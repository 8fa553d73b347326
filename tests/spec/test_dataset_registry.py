"""data.registry: an LLaMA-Factory data folder used as it is, its names looked up when the spec is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftc.records.files import dataset_files, records_of_files
from ftc.records.formats import FORMATS
from ftc.spec import SpecError, load_spec, parse_spec
from ftc.spec.resolve import resolve_paths
from tests.importers.helpers import BASE, write_data_folder


def spec_text(stage: str, *names: str, extra: str = "") -> str:
    entries = "".join(f'[[data.datasets]]\nname = "{name}"\n' for name in names)
    return f"""[model]
name_or_path = "{BASE}"
[train]
stage = "{stage}"
epochs = 1
[data]
registry = "lf_data/dataset_info.json"
{extra}{entries}"""


def load(tmp_path, text: str):
    write_data_folder(tmp_path / "lf_data")
    (tmp_path / "job.toml").write_text(text)
    loaded = load_spec(tmp_path / "job.toml")
    return resolve_paths(loaded.spec, loaded.base_dir, Path.exists)  # as the launcher anchors them


@pytest.mark.parametrize(
    ("stage", "name", "data_format", "columns"),
    [
        ("sft", "hello_alpaca", "alpaca", {"instruction": "ask", "input": "detail", "output": "reply"}),
        ("sft", "talks", "sharegpt", {"conversations": "turns", "system": "sys", "tools": "functions"}),
        ("sft", "openai_chats", "messages", {"messages": "dialog"}),
        ("pt", "notes_text", "text", {"text": "body"}),
        ("dpo", "pairs", "preference", {"messages": "conversations", "chosen": "better", "rejected": "worse"}),
        ("dpo", "alpaca_pairs", "preference", {"instruction": "question", "chosen": "good", "rejected": "bad"}),
        ("kto", "verdicts", "kto", {"label": "thumbs_up"}),
    ],
)
def test_a_name_reads_its_entry_and_every_record_parses(tmp_path, stage, name, data_format, columns):
    spec = load(tmp_path, spec_text(stage, name))
    dataset = spec.data.datasets[0]
    assert (dataset.name, dataset.format) == (name, data_format)
    assert columns.items() <= dataset.columns.items()
    records = list(records_of_files(dataset_files(dataset)))
    assert records and all(FORMATS[data_format].parse(raw, dataset.columns) for _, raw in records)


def test_hub_entries_keep_split_and_sample_count(tmp_path):
    spec = load(tmp_path, spec_text("sft", "hub_mix"))
    dataset = spec.data.datasets[0]
    assert (dataset.path, dataset.split, dataset.max_samples) == ("someone/their-instructions", "validation", 300)


def test_keys_written_in_the_entry_win(tmp_path):
    text = spec_text("sft", "hello_alpaca").replace('name = "hello_alpaca"', 'name = "hello_alpaca"\nmax_samples = 7')
    assert load(tmp_path, text).data.datasets[0].max_samples == 7


@pytest.mark.parametrize(
    ("stage", "name", "entry", "says"),
    [
        ("sft", "nope", None, "no dataset named 'nope'"),
        ("sft", "pairs", None, "ranking entry holds pairs"),
        ("dpo", "hello_alpaca", None, "not ranking"),
        ("sft", "odd", {"file_name": "x.json", "ms_hub_url": "a/b"}, "ModelScope"),
        ("sft", "odd", {"file_name": "x.json", "columns": {"images": "pics"}}, "text only"),
        ("sft", "odd", {"file_name": "x.json", "formatting": "sharegpt", "tags": {"role_tag": "speaker"}}, "speaker"),
        ("sft", "odd", {"formatting": "alpaca"}, "names no file_name or hf_hub_url"),
    ],
)
def test_an_entry_ftc_cannot_read_is_an_error_at_the_name(tmp_path, stage, name, entry, says):
    folder = tmp_path / "lf_data"
    info = write_data_folder(folder)
    if entry is not None:
        info.write_text(json.dumps({**json.loads(info.read_text()), name: entry}))
    (tmp_path / "job.toml").write_text(spec_text(stage, name))
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "job.toml")
    [found] = caught.value.diagnostics
    assert (found.path, found.code, found.line) == ("data.datasets[0].name", "E-REGISTRY", 9)
    assert says in found.message


def test_a_missing_registry_file_is_located_at_the_key(tmp_path):
    (tmp_path / "job.toml").write_text(spec_text("sft", "x"))
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "job.toml")
    [found] = caught.value.diagnostics
    assert (found.path, found.code, found.line) == ("data.registry", "E-REGISTRY", 7)


def test_a_name_without_a_registry_is_refused(tmp_path):
    text = spec_text("sft", "x").replace('registry = "lf_data/dataset_info.json"\n', "")
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    [found] = caught.value.diagnostics
    assert (
        found.code == "E-MISSING" and "name = 'x' was not looked up" in found.message and "data.registry" in found.hint
    )
