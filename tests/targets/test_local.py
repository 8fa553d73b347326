import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.errors import FtcError
from ftc.spec import Spec, parse_spec
from ftc.spec.loader import LoadedSpec
from ftc.spec.resolve import resolve_paths
from ftc.targets import get_target
from ftc.targets.base import Job
from ftc.targets.run_folder import write_run_folder
from tests.specs import VALID, replace

HOSTILE_NAMES = [
    "with space",
    "quote'single",
    'quote"double',
    "$(touch pwned)",
    "`touch pwned`",
    "new\nline",
    "-leading-dash",
    "ünïcødé 名前",
    "semi;colon&amp|pipe",
]


def job_in(folder: Path, run_name: str = "run", python: str = sys.executable) -> Job:
    spec = parse_spec(replace(VALID, 'dir = "runs/quickstart"', f"dir = {json.dumps(run_name)}"), "job.toml")
    spec = resolve_paths(spec, folder, is_local=lambda path: False)
    plan = compile_plan(spec, parse_hardware("cpu"))
    return Job(spec_path=folder / "job.toml", spec=spec, plan=plan, run_dir=Path(spec.output.dir), python=python)


def test_rendered_run_folder_holds_the_resolved_spec_plan_and_script(tmp_path):
    job = job_in(tmp_path)
    target = get_target("local")
    rendered = target.render(job)
    assert set(rendered.files) == {"spec.toml", "plan.json", "run.sh"}
    spec = Spec.model_validate(tomllib.loads(rendered.files["spec.toml"]))
    assert spec.output.dir == str(tmp_path / "run")
    assert spec.model.name_or_path == "meta-llama/Meta-Llama-3-8B-Instruct"  # a hub id stays as written
    plan = json.loads(rendered.files["plan.json"])
    assert plan["micro_batch_size"] == 8 and plan["ftc_version"]
    assert rendered.command == ["bash", str(tmp_path / "run" / "run.sh")]


def test_relative_local_paths_are_anchored_at_the_spec_folder(tmp_path):
    spec = parse_spec(VALID, "job.toml")
    local = {tmp_path / "data" / "alpaca_en.json"}
    resolved = resolve_paths(spec, tmp_path, is_local=lambda path: path in local)
    assert resolved.data.datasets[0].path == str(tmp_path / "data" / "alpaca_en.json")
    assert resolved.model.name_or_path == spec.model.name_or_path


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_run_folder_names_cannot_break_or_inject(tmp_path, name):
    # A stand-in interpreter records the arguments it receives, so the test sees exactly what the
    # shell passed after quoting.
    recorder = tmp_path / "record-args"
    recorder.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    recorder.chmod(0o755)
    job = job_in(tmp_path, run_name=name, python=str(recorder))
    rendered = get_target("local").render(job)
    write_run_folder(job.run_dir, rendered.files, set(rendered.executable), overwrite=False)
    script = job.run_dir / "run.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["-m", "ftc.runtime", str(job.run_dir)]
    assert not (tmp_path / "pwned").exists() and not (job.run_dir / "pwned").exists()


def test_existing_run_folder_is_kept_unless_overwrite(tmp_path):
    run_dir = tmp_path / "run"
    write_run_folder(run_dir, {"a.txt": "old"}, set(), overwrite=False)
    with pytest.raises(FtcError) as caught:
        write_run_folder(run_dir, {"a.txt": "new"}, set(), overwrite=False)
    assert "--overwrite" in caught.value.hint
    assert (run_dir / "a.txt").read_text() == "old"
    write_run_folder(run_dir, {"b.txt": "new"}, set(), overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or retired folders left


def test_a_failed_write_leaves_no_run_folder(tmp_path, monkeypatch):
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_run_folder(tmp_path / "run", {"a": "1", "b": "2"}, set(), overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_loaded_spec_anchors_paths_at_its_own_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    loaded = LoadedSpec(parse_spec(VALID, "job.toml"), tmp_path / "sub" / "job.toml")
    assert loaded.base_dir == (tmp_path / "sub").resolve()


def test_paths_spelled_as_files_are_anchored_even_when_missing(tmp_path):
    spec = parse_spec(
        replace(VALID, 'name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"', 'name_or_path = "./m"'), "x"
    )
    resolved = resolve_paths(spec, tmp_path, is_local=lambda path: False)
    assert resolved.data.datasets[0].path == str(tmp_path / "data" / "alpaca_en.json")
    assert resolved.model.name_or_path == str(tmp_path / "m")


def test_start_records_the_process_and_its_exit_status_in_the_run_folder(tmp_path):
    from ftc.targets.base import Rendered
    from ftc.targets.local import LocalTarget, process_alive, read_local_record

    job = job_in(tmp_path)
    job.run_dir.mkdir()
    # What the board reads to tell a running run from one that ended, and how: the pid while it runs, then its status.
    script = (
        "for _ in $(seq 100); do test -s local_job.json && break; sleep 0.05; done; "
        'grep -q "\\"pid\\": $$" local_job.json && exit 3'
    )
    code = LocalTarget().start(job, Rendered(files={}, command=["bash", "-c", script]))
    record = read_local_record(job.run_dir)
    assert code == 3 and record.exit_code == 3 and record.ended_at >= record.started_at
    assert not process_alive(record, job.run_dir)
