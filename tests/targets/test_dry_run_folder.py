"""`ftc launch --dry-run`, then `ftc launch`: the folder a dry run wrote is launched as it is, if nothing differs.

Run through the command line in-process; only the slow test lets the local target really start the runtime.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftc.cli.typer_app import run
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.targets.dry_run_folder import LAUNCH_FILE
from ftc.targets.local import LocalTarget
from tests.commands import ftc
from tests.specs import VALID, replace


@pytest.fixture
def spec_file(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alpaca_en.json").write_text(json.dumps([{"instruction": "Say hi.", "output": "Hi."}]))
    path = tmp_path / "job.toml"
    path.write_text(VALID)
    return path


@pytest.fixture
def started(monkeypatch) -> list[Path]:
    """The local target's start, recorded instead of run: these tests are about the folder, not the training."""
    runs: list[Path] = []

    def record(self, job, rendered):
        runs.append(job.run_dir)
        return 0

    monkeypatch.setattr(LocalTarget, "start", record)
    return runs


def launch(capsys, spec_file: Path, *options: str) -> tuple[int, str]:
    code = run(["launch", str(spec_file), "--hardware", "cpu", *options])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def contents(run_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(run_dir.iterdir()) if path.is_file()}


def record_of(run_dir: Path) -> dict:
    return json.loads((run_dir / LAUNCH_FILE).read_text())


def test_a_dry_run_then_a_launch_starts_the_folder_the_dry_run_wrote(spec_file, capsys, started):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    assert record_of(run_dir) == {"target": "local", "dry_run": True, "files": ["plan.json", "run.sh", "spec.toml"]}
    written = contents(run_dir)

    code, output = launch(capsys, spec_file)
    assert code == 0, output
    assert started == [run_dir]
    launched = contents(run_dir)
    assert {name: text for name, text in launched.items() if name != LAUNCH_FILE} == {
        name: text for name, text in written.items() if name != LAUNCH_FILE
    }  # launched as it is
    assert record_of(run_dir)["dry_run"] is False  # from now on a launched folder

    code, output = launch(capsys, spec_file)  # a second launch of the same folder: it may be running
    assert code == 1 and "already exists" in output and "--resume" in output and "--overwrite" in output
    assert started == [run_dir]


def test_the_same_dry_run_again_keeps_the_folder(spec_file, capsys):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    written = contents(run_dir)
    code, output = launch(capsys, spec_file, "--dry-run")
    assert code == 0, output
    assert contents(run_dir) == written


def test_the_spec_named_another_way_is_the_same_launch(spec_file, capsys, started, monkeypatch):
    assert launch(capsys, spec_file, "--dry-run")[0] == 0  # the scripts' headers name the spec as typed
    monkeypatch.chdir(spec_file.parent)
    code, output = launch(capsys, Path("job.toml"))
    assert code == 0, output
    assert started == [spec_file.parent / "runs" / "quickstart"]


def test_a_changed_spec_is_refused_naming_the_key(spec_file, capsys, started):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    written = contents(run_dir)
    spec_file.write_text(replace(VALID, "learning_rate = 1e-4", "learning_rate = 3e-4"))

    code, output = launch(capsys, spec_file)
    assert code == 1
    assert "holds a dry run that differs from this launch: train.learning_rate 0.0001 → 0.0003" in output
    assert "--overwrite" in output
    assert contents(run_dir) == written and started == []

    assert launch(capsys, spec_file, "--overwrite")[0] == 0  # the way out the hint names
    assert "learning_rate = 0.0003" in (run_dir / "spec.toml").read_text() and started == [run_dir]


def test_a_changed_plan_is_refused_naming_the_plan_keys(spec_file, capsys, started):
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    code, output = launch(capsys, spec_file, "--set", "train.micro_batch_size=2")
    assert code == 1 and "train.micro_batch_size (unset) → 2" in output
    assert "plan.micro_batch_size 8 → 2" in output and "plan.gradient_accumulation_steps 2 → 8" in output


def test_a_dry_run_for_another_target_is_refused_unless_overwrite(spec_file, capsys):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    code, output = launch(capsys, spec_file, "--dry-run", "--target", "slurm")
    assert code == 1 and "target local → slurm" in output and "--overwrite" in output
    assert record_of(run_dir)["target"] == "local"

    assert launch(capsys, spec_file, "--dry-run", "--target", "slurm", "--overwrite")[0] == 0
    assert record_of(run_dir)["target"] == "slurm" and not (run_dir / "run.sh").exists()
    assert launch(capsys, spec_file, "--dry-run", "--target", "slurm")[0] == 0  # the same target again is fine


@pytest.mark.parametrize(
    "trace",
    ["metrics.json", "fingerprint.json", "checkpoints/checkpoint-5/trainer_state.json", "slurm-7.log", "adapter/"],
)
def test_a_folder_the_runtime_touched_keeps_the_refusal(spec_file, capsys, started, trace):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    path = run_dir / trace
    if trace.endswith("/"):  # an empty folder is a trace too: the trainer made it
        path.mkdir()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    code, output = launch(capsys, spec_file)
    assert code == 1 and "already exists" in output and "--resume" in output and "--overwrite" in output
    assert started == [] and path.exists()


def test_a_folder_with_a_file_gone_is_no_dry_run_to_launch(spec_file, capsys, started):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    (run_dir / "run.sh").unlink()
    code, output = launch(capsys, spec_file)
    assert code == 1 and "already exists" in output and started == []


def test_an_edited_script_is_named(spec_file, capsys, started):
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert launch(capsys, spec_file, "--dry-run")[0] == 0
    (run_dir / "run.sh").write_text((run_dir / "run.sh").read_text() + "echo edited\n")
    code, output = launch(capsys, spec_file)
    assert code == 1 and "run.sh differs" in output and started == []


SPEC = """\
[model]
name_or_path = "tiny"
template = "llama3"

[data]
cutoff_len = 64

[[data.datasets]]
path = "data/tiny.json"

[train]
stage = "sft"
method = "lora"
global_batch_size = 4
micro_batch_size = 4
learning_rate = 1e-2
max_steps = 2
save_steps = 2

[lora]
rank = 4
alpha = 8

[output]
dir = "runs/tiny"
"""


@pytest.mark.slow
def test_a_dry_run_then_a_real_launch_trains(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "tiny")
    write_tiny_alpaca(tmp_path / "data" / "tiny.json", n=16, seed=0)
    (tmp_path / "job.toml").write_text(SPEC)
    dry = ftc("launch", str(tmp_path / "job.toml"), "--hardware", "cpu", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "data: 1 file, 16 records checked in" in dry.stdout

    result = ftc("launch", str(tmp_path / "job.toml"), "--hardware", "cpu")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny"
    assert json.loads((run_dir / "metrics.json").read_text())["log"]
    assert (run_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()

    again = ftc("launch", str(tmp_path / "job.toml"), "--hardware", "cpu", "--dry-run")  # it trained: refused
    assert again.returncode == 1 and "already exists" in again.stderr and "--resume" in again.stderr
