"""Every record checked before anything is written: `ftc launch` and `ftc validate --data` report all bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftc.cli.typer_app import run
from ftc.errors import RuntimeUserError
from ftc.records.check import SHOWN, check_data
from ftc.runtime.data.loading import dataset_conversations
from ftc.spec.models import DataSection, DatasetSection
from tests.specs import VALID, replace

GOOD = {"instruction": "Say hi.", "output": "Hi."}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def checked(*paths: Path, **options) -> object:
    return check_data(DataSection(datasets=[DatasetSection(path=str(path), **options) for path in paths]))


def test_good_files_pass_and_are_counted(tmp_path):
    check = checked(write_jsonl(tmp_path / "a.jsonl", [GOOD] * 3), write_jsonl(tmp_path / "b.jsonl", [GOOD] * 2))
    assert (check.files, check.records, check.problems) == (2, 5, 0)
    assert check.summary().startswith("data: 2 files, 5 records checked in ")


def test_a_truncated_jsonl_names_the_line_and_reads_on(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"instruction": "Say', encoding="utf-8")
    check = checked(path)
    assert check.problems == 1 and check.records == 2
    assert check.shown == [
        f"{path} line 2: invalid JSON: it ends mid-record, is the file truncated? "
        "(Unterminated string starting at: line 1 column 17 (char 16))"
    ]


def test_a_truncated_json_array_is_one_problem_for_the_file(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps([GOOD, GOOD])[:-8], encoding="utf-8")
    check = checked(path)
    assert check.problems == 1
    assert check.shown[0].startswith(f"{path}: invalid JSON: it ends mid-record, is the file truncated?")


def test_an_alpaca_record_without_output_is_named_by_index(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, {"instruction": "Say hi."}, GOOD]), encoding="utf-8")
    check = checked(path)
    assert check.shown == [f"{path} record 1: missing 'output'"]
    assert "alpaca records hold instruction, input, output" in check.error().hint


def test_every_bad_record_is_counted_and_the_first_twenty_shown(tmp_path):
    records = [GOOD] + [{"instruction": f"{n}"} for n in range(25)]
    error = checked(write_jsonl(tmp_path / "d.jsonl", records)).error()
    lines = error.message.splitlines()
    assert lines[0].startswith("25 bad records in the data (data: 1 file, 26 records checked in ")
    assert lines[1 : SHOWN + 1] == [f"  {tmp_path / 'd.jsonl'} line {n}: missing 'output'" for n in range(2, 22)]
    assert lines[SHOWN + 1 :] == ["  … and 5 more"]


def test_the_check_and_the_runtime_name_the_same_first_record(tmp_path):
    # One reader and one format definition: what the check reports first is what the runtime stops at.
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"instruction": "x", "output": 3}, {"output": "y"}])
    check = checked(path)
    with pytest.raises(RuntimeUserError) as runtime:
        dataset_conversations(DatasetSection(path=str(path)))
    assert check.shown[0] == runtime.value.message
    assert check.shown[1] == f"{path} line 3: missing 'instruction'"


def test_only_the_records_the_runtime_reads_are_checked(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, GOOD, {"instruction": "beyond max_samples"}])
    check = checked(path, max_samples=2)
    assert (check.records, check.problems) == (2, 0)


def test_a_missing_dataset_and_hub_datasets(tmp_path):
    check = check_data(
        DataSection(datasets=[DatasetSection(path=str(tmp_path / "gone.jsonl")), DatasetSection(path="someone/corpus")])
    )
    assert check.shown == [f"data.datasets[0]: dataset {tmp_path / 'gone.jsonl'} not found"]
    assert check.unchecked == ["data.datasets[1] someone/corpus (a hub dataset)"]  # read by the runtime


def test_eval_datasets_are_checked_too(tmp_path):
    train, held = write_jsonl(tmp_path / "t.jsonl", [GOOD]), write_jsonl(tmp_path / "e.jsonl", [{"output": "x"}])
    check = check_data(
        DataSection(datasets=[DatasetSection(path=str(train))], eval_datasets=[DatasetSection(path=str(held))])
    )
    assert check.shown == [f"{held} line 1: missing 'instruction'"]


# --- through the command line -----------------------------------------------------------------------------------


@pytest.fixture
def spec_file(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    path = tmp_path / "job.toml"
    path.write_text(replace(VALID, "data/alpaca_en.json", "data/d.jsonl"))
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_launch_with_bad_records_is_refused_before_anything_is_written(spec_file, capsys):
    write_jsonl(spec_file.parent / "data" / "d.jsonl", [GOOD] + [{"instruction": "x"}] * 25)
    code, out, err = cli(capsys, "launch", str(spec_file), "--hardware", "cpu")
    assert code == 1
    assert "error: 25 bad records in the data" in err and "line 2: missing 'output'" in err and "… and 5 more" in err
    assert "Traceback" not in err
    assert not (spec_file.parent / "runs").exists()  # nothing to --overwrite afterwards


def test_a_launch_says_what_it_checked(spec_file, capsys):
    write_jsonl(spec_file.parent / "data" / "d.jsonl", [GOOD] * 3)
    code, out, err = cli(capsys, "launch", str(spec_file), "--hardware", "cpu", "--dry-run")
    assert code == 0, err
    assert "data: 1 file, 3 records checked in " in out


def test_validate_data_fails_on_a_bad_record_and_passes_good_data(spec_file, capsys):
    data = spec_file.parent / "data" / "d.jsonl"
    write_jsonl(data, [GOOD, {"instruction": "x"}])
    assert cli(capsys, "validate", str(spec_file))[0] == 0  # without --data the records are not read

    code, out, err = cli(capsys, "validate", "--data", str(spec_file))
    assert code == 1
    assert f"{spec_file}: 1 bad record in the data" in out and f"{data} line 2: missing 'output'" in out
    assert "hint: alpaca records hold" in out and "1 problem in 1 of 1 file(s)" in err

    write_jsonl(data, [GOOD, GOOD])
    code, out, err = cli(capsys, "validate", "--data", str(spec_file))
    assert code == 0 and "data: 1 file, 2 records checked in " in err and "ok: 1 spec file valid" in err

    write_jsonl(data, [GOOD, {"instruction": "x"}])
    code, out, _ = cli(capsys, "validate", "--data", "--format", "json", str(spec_file))
    report = json.loads(out)
    assert code == 1 and report["data"][0]["problems"] == 1
    assert report["data"][0]["shown"] == [f"{data} line 2: missing 'output'"]
