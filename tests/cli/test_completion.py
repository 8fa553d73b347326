"""Completion that knows ftc, through the lazy typer CLI that `ftc` runs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from ftc.cli import completion
from ftc.compiler.hardware import HARDWARE
from ftc.spec.schema import known_keys
from ftc.targets import TARGETS
from tests.specs import VALID

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ftc(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
    )


def test_hardware_lists_the_registry_its_aliases_and_counted_forms():
    offered = completion.hardware("")
    assert "auto" in offered and set(HARDWARE) <= set(offered) and "4090" in offered
    assert completion.hardware("8xH1") == ["8xH100-80GB", "8xH100"]
    assert completion.hardware("4xa10g") == ["4xA10G-24GB", "4xA10G"]
    assert "4xcpu" in completion.hardware("4x") and completion.hardware("zz") == []


def test_keys_come_from_the_schema_and_set_offers_them_ready_for_a_value():
    assert completion.key_path("train.learning") == ["train.learning_rate"]
    assert set(completion.key_path("")) == set(known_keys())
    assert completion.override("lora.ra") == ["lora.rank="]
    assert completion.override("lora.rank=1") == []


def test_targets_and_run_folders(tmp_path, monkeypatch):
    assert completion.target("") == list(TARGETS) and completion.target("sl") == ["slurm"]
    (tmp_path / "runs" / "done").mkdir(parents=True)
    (tmp_path / "runs" / "done" / "plan.json").write_text("{}")
    (tmp_path / "runs" / "more").mkdir()
    monkeypatch.chdir(tmp_path)
    assert completion.run_folder("") == ["runs/"]
    assert completion.run_folder("runs/") == ["runs/done", "runs/more/"]
    assert completion.run_folder("runs/d") == ["runs/done"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ftc pl", ["plan"]),
        ("ftc plan job.toml --hardware 8xH2", ["8xH200-141GB", "8xH200"]),
        ("ftc plan job.toml --set train.learning", ["train.learning_rate="]),
        ("ftc explain lora.ra", ["lora.rank"]),
        ("ftc launch job.toml --target sl", ["slurm"]),
        ("ftc plan job.toml -f ", ["table", "json"]),
        ("ftc report ru", ["runs/"]),
    ],
)
def test_bash_completion_through_the_shell_protocol(tmp_path, line, expected):
    (tmp_path / "runs").mkdir()
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {"_FTC_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    result = ftc(cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["plan", "job.toml", "--nodes", "0"], "argument --nodes: 0 is below the least allowed, 1"),
        (["plan", "job.toml", "--nodes", "two"], "argument --nodes: 'two' is not a whole number"),
        (["plan", "job.toml", "--format", "yaml"], "argument --format/-f: invalid choice: 'yaml'"),
        (["plan", "job.toml", "--hardwre", "cpu"], "unrecognized arguments: --hardwre cpu"),
        (["lanch", "job.toml"], "invalid choice: 'lanch'"),
        (["validate"], "the following arguments are required: spec"),
    ],
)
def test_usage_mistakes_keep_their_argparse_wording(tmp_path, args, expected):
    (tmp_path / "job.toml").write_text(VALID)
    result = ftc(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr and "usage: ftc" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("shell", "written"),
    [
        ("bash", ".bash_completions/ftc.sh"),
        ("zsh", ".zfunc/_ftc"),
        ("fish", ".config/fish/completions/ftc.fish"),
    ],
)
def test_completion_scripts_for_each_shell_call_back_through_the_completion_variable(tmp_path, shell, written):
    # typer detects the shell from the parent process; its documented switch lets the shell be named instead.
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = ftc("--show-completion", shell, cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "_FTC_COMPLETE" in shown.stdout and f"complete_{shell}" in shown.stdout
    assert not any(home.iterdir())  # showing writes nothing
    installed = ftc("--install-completion", shell, cwd=tmp_path, env=env)
    assert installed.returncode == 0, installed.stderr
    assert f"{shell} completion installed" in installed.stdout
    assert "_FTC_COMPLETE" in (home / written).read_text()


def test_install_completion_detects_bash_as_the_shell_it_runs_in(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": ROOT}
    line = f"{shlex.quote(sys.executable)} -m ftc --show-completion"
    shown = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "complete_bash" in shown.stdout, shown.stderr


def test_no_chat_template_turns_the_template_off_and_only_off(monkeypatch, capsys):
    from ftc.cli import trained
    from ftc.cli.typer_app import run

    seen = []
    monkeypatch.setattr(trained, "eval_run", lambda args: seen.append(args.chat_template))
    assert run(["eval", "run"]) == 0 and run(["eval", "run", "--no-chat-template"]) == 0
    assert seen == [True, False]
    assert run(["eval", "run", "--chat-template"]) == 2  # argparse had no such flag either
    assert "unrecognized arguments: --chat-template" in capsys.readouterr().err


def test_ftc_validates_and_plans_with_the_json_contract(tmp_path):
    (tmp_path / "job.toml").write_text(VALID)
    validated = ftc("validate", "job.toml", "-f", "json", cwd=tmp_path)
    assert validated.returncode == 0
    assert json.loads(validated.stdout) == {"files": 1, "valid": 1, "diagnostics": []}
    planned = ftc("plan", "job.toml", "-H", "2xa10g", "-f", "json", "-s", "train.seed=7", cwd=tmp_path)
    assert planned.returncode == 0 and json.loads(planned.stdout)["hardware"]["devices_per_node"] == 2
    assert ftc("--version", cwd=tmp_path).stdout.startswith("ftc ")
