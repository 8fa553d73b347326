"""The prepared-data cache: a second preparation reads what the first wrote; what decides the rows decides the key;
several processes prepare once; a killed preparation leaves nothing a later run reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftc.data_cache.entries import TEMPORARY, complete, entries
from ftc.data_cache.key import entry_of, prepared_key
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.spec.models import Spec
from tests.tiny_runs import tiny_spec

ROOT = Path(__file__).resolve().parents[2]


def spec_of(tmp_path: Path, model_dir: Path, data: Path, **data_keys) -> Spec:
    raw = tiny_spec(tmp_path / "run", model_dir, data)
    raw["data"].update(data_keys)
    return Spec.model_validate(raw)


def prepare(spec: Spec):
    """The runtime's own path: the stage's tokenizer, then its rows from the cache or prepared now."""
    from ftc.runtime.data.prepared import token_stage_data
    from ftc.runtime.data.recipes import stage_tokenizer

    return token_stage_data(spec, stage_tokenizer(spec), stream=lambda: None)


@pytest.fixture
def data(tmp_path) -> Path:
    return write_tiny_alpaca(tmp_path / "data.json", n=48)


def test_the_second_preparation_reads_what_the_first_wrote(tmp_path, tiny_model_dir, data, capsys):
    spec = spec_of(tmp_path, tiny_model_dir, data, eval_ratio=0.25)
    first = prepare(spec)
    assert first.report["cache"] == "miss" and complete(entry_of(spec, prepared_key(spec)))
    second = prepare(spec)
    assert second.report["cache"] == "hit"
    assert second.train.to_list() == first.train.to_list() and second.evaluated.to_list() == first.evaluated.to_list()
    assert (len(first.train), len(first.evaluated)) == (36, 12)
    # The hit says what the preparation said, and where it read from.
    out = capsys.readouterr().out.splitlines()
    assert out.count(first.lines[0]) == 2 and "cache hit" in out[-1]


@pytest.mark.parametrize(
    "change",
    ["the data file", "the template", "cutoff_len", "packing"],
)
def test_what_decides_the_rows_decides_the_key(tmp_path, tiny_model_dir, data, change):
    spec = spec_of(tmp_path, tiny_model_dir, data)
    prepare(spec)
    before = prepared_key(spec).digest
    if change == "the data file":
        records = json.loads(data.read_text(encoding="utf-8"))
        records[3]["output"] += " Indeed."
        data.write_text(json.dumps(records), encoding="utf-8")
        changed = spec
    elif change == "the template":
        changed = spec.model_copy(update={"model": spec.model.model_copy(update={"template": "chatml"})})
    else:
        value = 28 if change == "cutoff_len" else True
        changed = spec.model_copy(update={"data": spec.data.model_copy(update={change: value})})
    assert prepared_key(changed).digest != before
    again = prepare(changed)
    assert again.report["cache"] == "miss"
    assert len([entry for entry in entries(entry_of(spec, prepared_key(spec)).parent) if entry.complete]) == 2


def test_a_spec_that_turns_the_cache_off_prepares_every_time(tmp_path, tiny_model_dir, data):
    spec = spec_of(tmp_path, tiny_model_dir, data, cache=False)
    assert [prepare(spec).report["cache"] for _ in range(2)] == ["off", "off"]
    assert prepared_key(spec).uncached == "data.cache = false"


_PREPARE_IN_A_PROCESS = """
import json, sys, time
from ftc.spec.models import Spec
from ftc.runtime.data import prepared

spec = Spec.model_validate(json.loads(sys.argv[1]))
original = prepared.prepare_token_rows
def slow_prepare(*args, **kwargs):  # long enough that the other process asks while this one prepares
    with open(sys.argv[2], "a") as log:
        log.write("prepared\\n")
    time.sleep(float(sys.argv[3]))
    return original(*args, **kwargs)
prepared.prepare_token_rows = slow_prepare
from ftc.runtime.data.recipes import stage_tokenizer
data = prepared.token_stage_data(spec, stage_tokenizer(spec), stream=lambda: None)
print("REPORT", data.report["cache"], len(data.train))
"""


def _start(spec: Spec, log: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _PREPARE_IN_A_PROCESS, json.dumps(spec.model_dump(mode="json")), str(log), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_two_processes_at_once_prepare_the_data_once(tmp_path, tiny_model_dir, data):
    spec = spec_of(tmp_path, tiny_model_dir, data)
    log = tmp_path / "preparations.log"
    processes = [_start(spec, log, delay=2.0) for _ in range(2)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    reports = sorted(line.split()[1] for output in outputs for line in output.splitlines() if line.startswith("REPORT"))
    assert reports == ["hit", "miss"]  # one prepared; the other waited, then read what it wrote
    assert log.read_text(encoding="utf-8").splitlines() == ["prepared"]


def test_a_killed_preparation_leaves_nothing_a_later_run_reads(tmp_path, tiny_model_dir):
    data = write_tiny_alpaca(tmp_path / "data.json", n=64)
    spec = spec_of(tmp_path, tiny_model_dir, data)
    root = entry_of(spec, prepared_key(spec)).parent
    from ftc.runtime.data import prepared

    # Killed while its files are being written: the rows are ready, the entry is not yet renamed.
    process = _start_writer_that_stops_midway(spec, tmp_path)
    deadline = time.monotonic() + 120
    while not any(folder.name.startswith(TEMPORARY) for folder in root.glob("*")) or not (tmp_path / "midway").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not complete(entry_of(spec, prepared_key(spec)))
    assert [entry.complete for entry in entries(root)] == [False]

    again = prepare(spec)
    assert again.report["cache"] == "miss" and len(again.train) == 64
    assert prepared.prepared_key(spec).digest == again.report["cache_key"]


_WRITE_AND_STOP = """
import json, sys, time, pathlib
from ftc.spec.models import Spec
from ftc.runtime.data import prepared

spec = Spec.model_validate(json.loads(sys.argv[1]))
original = prepared._write_arrow
def stuck_write(path, rows):
    original(path, rows)
    pathlib.Path(sys.argv[2]).write_text("yes")
    time.sleep(600)  # killed here, half-way through writing the entry
prepared._write_arrow = stuck_write
from ftc.runtime.data.recipes import stage_tokenizer
prepared.token_stage_data(spec, stage_tokenizer(spec), stream=lambda: None)
"""


def _start_writer_that_stops_midway(spec: Spec, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _WRITE_AND_STOP, json.dumps(spec.model_dump(mode="json")), str(tmp_path / "midway")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_a_damaged_entry_is_prepared_again(tmp_path, tiny_model_dir, data, capsys):
    spec = spec_of(tmp_path, tiny_model_dir, data)
    rows = prepare(spec).train.to_list()
    entry = entry_of(spec, prepared_key(spec))
    (entry / "train.arrow").unlink()  # a new file, not the one the first dataset maps
    (entry / "train.arrow").write_bytes(b"not arrow")  # a disk error, a hand edit
    again = prepare(spec)
    assert again.report["cache"] == "miss" and again.train.to_list() == rows
    assert "cannot be read" in capsys.readouterr().out


def test_a_cache_folder_that_cannot_be_written_is_a_user_error(tmp_path, tiny_model_dir, data):
    from ftc.errors import RuntimeUserError

    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    spec = spec_of(tmp_path, tiny_model_dir, data, cache_dir=str(blocked / "cache"))
    with pytest.raises(RuntimeUserError, match="cannot be written") as raised:
        prepare(spec)
    assert "data.cache = false" in raised.value.hint
