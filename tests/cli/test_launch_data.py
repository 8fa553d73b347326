"""`ftc launch`'s data step: on the local target the check and the preparation are one pass into the cache,
and a launch that finds its entry reads nothing; a bad record stops it before anything is kept."""

from __future__ import annotations

import json

import pytest

from ftc.cli.launch_data import check_and_prepare
from ftc.data_cache.entries import entries
from ftc.data_cache.key import entry_of, prepared_key
from ftc.errors import FtcError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.spec.models import Spec
from tests.tiny_runs import tiny_spec


def spec_of(tmp_path, model_dir, data) -> Spec:
    return Spec.model_validate(tiny_spec(tmp_path / "run", model_dir, data))


def test_the_local_launch_prepares_what_it_checked_and_the_next_reads_nothing(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    from ftc.records import files

    spec = spec_of(tmp_path, tiny_model_dir, write_tiny_alpaca(tmp_path / "data.json", n=40))
    reads = []
    original = files.json_entries
    monkeypatch.setattr(files, "json_entries", lambda file: reads.append(file) or original(file))
    monkeypatch.setitem(files.ENTRY_READERS, ".json", files.json_entries)

    check_and_prepare(spec, prepare=True)
    out = capsys.readouterr().out
    assert "data: 1 file, 40 records checked" in out and "cache miss" in out
    assert len(reads) == 1  # one pass over the file: the preparation took what the check parsed
    meta = json.loads((entry_of(spec, prepared_key(spec)) / "meta.json").read_text(encoding="utf-8"))
    assert (meta["records"], meta["rows"]) == (40, 40)

    check_and_prepare(spec, prepare=True)
    assert "prepared already" in capsys.readouterr().out and len(reads) == 1


def test_elsewhere_the_launch_only_checks(tmp_path, tiny_model_dir, capsys):
    spec = spec_of(tmp_path, tiny_model_dir, write_tiny_alpaca(tmp_path / "data.json", n=8))
    check_and_prepare(spec, prepare=False)
    assert "8 records checked" in capsys.readouterr().out
    assert entries(entry_of(spec, prepared_key(spec)).parent) == []


def test_a_bad_record_stops_the_launch_and_nothing_is_kept(tmp_path, tiny_model_dir):
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "Say hi.", "output": "Hi."}\n{"instruction": "no output"}\n', encoding="utf-8")
    spec = spec_of(tmp_path, tiny_model_dir, data)
    with pytest.raises(FtcError, match="line 2"):
        check_and_prepare(spec, prepare=True)
    assert entries(entry_of(spec, prepared_key(spec)).parent) == []


def test_an_image_text_model_is_checked_but_no_token_rows_are_prepared_for_it(tmp_path, capsys):
    """Its batches are made by the processor from the rows' texts and images: rows tokenized ahead would go unused."""
    from ftc.models.lookup import has_vision_tower
    from ftc.quickstart.tiny_vision import write_shapes_dataset

    model = tmp_path / "llava"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llava"}), encoding="utf-8")
    written = tiny_spec(tmp_path / "run", model, write_shapes_dataset(tmp_path / "shapes", n=6), "sharegpt")
    spec = Spec.model_validate(written)
    key = prepared_key(spec)
    assert key.uncached == "an image+text model: the processor makes each batch from its texts and images"
    check_and_prepare(spec, prepare=True)
    out = capsys.readouterr().out
    assert "data: 1 file, 6 records checked" in out and "cache" not in out
    # the same folder said to hold a text model (model.architecture is read first) has its rows kept
    text = spec.model_copy(update={"model": spec.model.model_copy(update={"architecture": {"model_type": "llama"}})})
    assert prepared_key(text).uncached is None and prepared_key(text).digest
    for name, vision in (("llava-hf/llava-1.5-7b-hf", True), ("meta-llama/Meta-Llama-3-8B-Instruct", False)):
        hub = spec.model_copy(update={"model": spec.model.model_copy(update={"name_or_path": name})})
        assert has_vision_tower(hub) is vision
