"""The pre-commit hooks of .pre-commit-hooks.yaml, run as pre-commit runs them: entry, then the staged files."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from ftc.cli.precommit import locked_specs
from tests.commands import ROOT, ftc
from tests.specs import VALID, replace

HOOKS = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty one: the machine's never decides
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alpaca_en.json").write_text('[{"instruction": "hi", "output": "hello"}]\n')
    (tmp_path / "job.toml").write_text(VALID)
    (tmp_path / "bad.ftc.toml").write_text(replace(VALID, "rank = 8", "rnak = 8"))
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


def hook(hook_id: str, files: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The hook's entry on the files its pattern selects, with this checkout's ftc as the command."""
    entry = shlex.split(HOOKS[hook_id]["entry"])
    program = {"ftc": [sys.executable, "-m", "ftc"], "python": [sys.executable]}[entry[0]]
    chosen = [file for file in files if re.search(HOOKS[hook_id]["files"], file)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*program, *entry[1:], *chosen], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_manifest_names_both_hooks_and_their_commands_exist():
    assert list(HOOKS) == ["ftc-validate", "ftc-lock-verify"]
    for hook_id, hook_ in HOOKS.items():
        assert {"id", "name", "entry", "language", "files"} <= set(hook_), hook_id
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert HOOKS["ftc-validate"]["entry"].split()[0] in scripts and HOOKS["ftc-validate"]["language"] == "python"
    # The lock holds the versions of the environment the runs use, so verify must run there, not in a hook venv.
    assert HOOKS["ftc-lock-verify"]["language"] == "system"
    assert HOOKS["ftc-lock-verify"]["entry"] == "python -m ftc.cli.precommit"


@pytest.mark.parametrize(
    ("name", "is_spec"),
    [
        ("job.toml", True),
        ("runs/a/job.toml", True),
        ("llama.ftc.toml", True),
        ("specs/dpo.toml", True),
        ("pyproject.toml", False),
        ("myjob.toml", False),
        ("ruff.toml", False),
        ("job.toml.lock", False),
    ],
)
def test_the_validate_pattern_takes_specs_and_leaves_other_toml(name, is_spec):
    assert bool(re.search(HOOKS["ftc-validate"]["files"], name)) is is_spec


def test_ftc_validate_passes_a_good_spec_and_fails_a_bad_one_with_its_place(project):
    staged = ["job.toml", "bad.ftc.toml", "pyproject.toml"]
    assert hook("ftc-validate", ["job.toml", "pyproject.toml"], project).returncode == 0
    result = hook("ftc-validate", staged, project)
    assert result.returncode == 1
    assert result.stdout.startswith("bad.ftc.toml:21: lora.rnak: [E-UNKNOWN-KEY] ")
    assert "1 problem in 1 of 2 file(s)" in result.stderr  # pyproject.toml was never passed


def test_locked_specs_are_those_with_a_lock_named_by_the_spec_or_the_lock(tmp_path):
    for name in ("a.toml", "a.toml.lock", "b.toml", "c.toml.lock"):
        (tmp_path / name).write_text("")
    named = [str(tmp_path / name) for name in ("a.toml", "a.toml.lock", "b.toml", "c.toml.lock", "gone.toml")]
    assert locked_specs(named) == [tmp_path / "a.toml"]  # once; c has a lock but no spec


def test_ftc_lock_verify_checks_only_locked_specs_and_fails_on_drift(project):
    staged = ["job.toml", "bad.ftc.toml", "pyproject.toml"]
    unlocked = hook("ftc-lock-verify", staged, project)
    assert (unlocked.returncode, unlocked.stdout) == (0, "")  # nothing locked: nothing to verify

    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    clean = hook("ftc-lock-verify", staged, project)
    assert clean.returncode == 0 and "the run matches job.toml.lock" in clean.stdout

    (project / "job.toml").write_text(replace(VALID, "seed = 42", "seed = 43"))
    drifted = hook("ftc-lock-verify", ["job.toml.lock"], project)  # a staged lock stands for its spec
    assert drifted.returncode == 1
    assert "drift from job.toml.lock" in drifted.stdout and "run.seed 42 → 43" in drifted.stdout
    assert "Traceback" not in drifted.stdout + drifted.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pre-commit") is None, reason="pre-commit is not installed")
def test_pre_commit_try_repo_runs_both_hooks_on_a_project(project, tmp_path):
    """pre-commit clones this checkout from disk (no network for that) and installs ftc into a hook
    environment from the package index, as a user's first run does."""
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    subprocess.run(["git", "add", "."], cwd=project, check=True)
    # The system hook runs this environment's python, with this checkout on its path.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "PYTHONPATH": str(ROOT), "PATH": path}
    result = subprocess.run(
        ["pre-commit", "try-repo", str(ROOT), "--all-files"], capture_output=True, text=True, cwd=project, env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"ftc validate\.+Failed", result.stdout) and re.search(r"ftc verify\.+Passed", result.stdout)
    assert "bad.ftc.toml:21: lora.rnak: [E-UNKNOWN-KEY]" in result.stdout
