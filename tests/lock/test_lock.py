"""ftc lock / verify / launch --locked: a locked run is reproduced exactly, and every kind of drift is named."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.errors import FtcError
from ftc.lock import build, inputs
from ftc.lock.build import current_lock
from ftc.lock.drift import drift
from ftc.lock.files import lock_path, read_lock, write_lock
from ftc.model_lookup import architecture_for
from ftc.spec import load_spec
from tests.commands import ftc

SPEC = """\
[model]
name_or_path = "model"
template = "llama3"

[data]
cutoff_len = 128

[[data.datasets]]
path = "data/train.json"

[train]
global_batch_size = 8
max_steps = 3
seed = 11

[output]
dir = "runs/locked"
"""


@pytest.fixture
def project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    shutil.copytree(tiny_model_dir, tmp_path / "model")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text('[{"instruction": "hi", "output": "hello"}]\n')
    (tmp_path / "job.toml").write_text(SPEC)
    return tmp_path


def lock_now(spec: Path, hardware: str = "cpu", overrides: tuple[str, ...] = ()) -> dict:
    loaded = load_spec(spec, overrides)
    plan = compile_plan(loaded.spec, parse_hardware(hardware), architecture_for(loaded.spec, loaded.base_dir))
    return current_lock(loaded, plan)


def locked(spec: Path, **kwargs) -> dict:
    document = lock_now(spec, **kwargs)
    write_lock(lock_path(spec), document)
    return read_lock(lock_path(spec))


def test_the_lock_holds_everything_that_decides_the_run(project):
    document = locked(project / "job.toml")
    assert document["lock"] == {"format": 1, "spec": "job.toml", "sources": ["job.toml"], "overrides": []}
    assert document["run"]["seed"] == 11 and document["run"]["template"] == "llama3"
    assert len(document["run"]["template_sha256"]) == 64
    assert "HF_TOKEN" in document["run"]["environment"]
    assert {"python", "ftc", "torch", "transformers", "peft", "trl", "datasets", "accelerate"} <= set(
        document["versions"]
    )
    assert document["hardware"] == {"name": "cpu", "devices_per_node": 1, "nodes": 1}
    assert document["plan"]["backend"] == "cpu" and document["plan"]["global_batch_size"] == 8
    model = document["inputs"]["model.name_or_path"]
    assert model["path"] == "model" and model["source"] == "local"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(model["files"])
    assert list(document["inputs"]["data.datasets[0].path"]["files"]) == ["train.json"]
    assert document["spec"]["train"]["seed"] == 11
    assert document["spec"]["model"]["name_or_path"] == "model"  # as written: the lock travels with the repo


def test_locking_twice_gives_byte_identical_files(project):
    result = ftc("lock", "job.toml", "-H", "cpu", cwd=project)
    assert result.returncode == 0, result.stderr
    first = (project / "job.toml.lock").read_bytes()
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    assert (project / "job.toml.lock").read_bytes() == first
    assert b"/" + bytes(project.name, "utf-8") not in first  # no machine paths in a file meant for git


def test_verify_is_quiet_without_drift_and_lists_it_otherwise(project):
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    clean = ftc("verify", "job.toml", cwd=project)
    assert clean.returncode == 0 and "matches" in clean.stdout
    (project / "data" / "train.json").write_text('[{"instruction": "hi", "output": "changed"}]\n')
    drifted = ftc("verify", "job.toml", cwd=project)
    assert drifted.returncode == 1
    assert "data/train.json sha256 changed" in drifted.stdout
    assert "Traceback" not in drifted.stdout + drifted.stderr


def test_launch_locked_refuses_drift_before_writing_anything(project):
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    result = ftc("launch", "job.toml", "-H", "cpu", "--locked", "--dry-run", "--set", "train.seed=12", cwd=project)
    assert result.returncode == 1
    assert "run.seed 11 → 12" in result.stdout and "--locked refuses" in result.stderr
    assert not (project / "runs").exists()
    ok = ftc("launch", "job.toml", "-H", "cpu", "--locked", "--dry-run", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (project / "runs" / "locked" / "run.sh").is_file()


def test_a_missing_lock_says_how_to_make_one(project):
    result = ftc("verify", "job.toml", cwd=project)
    assert result.returncode == 1 and "ftc lock job.toml" in result.stderr and "Traceback" not in result.stderr


# -- one drift test per locked field ---------------------------------------------------------------
def test_drift_in_a_library_version(project, monkeypatch):
    before = locked(project / "job.toml")
    real = inputs.versions()
    monkeypatch.setattr(build, "versions", lambda: {**real, "transformers": "5.99.0"})
    assert drift(before, lock_now(project / "job.toml")) == [f"transformers {real['transformers']} → 5.99.0"]


def test_drift_in_model_weights_and_in_added_and_removed_files(project):
    before = locked(project / "job.toml")
    (project / "model" / "model.safetensors").write_bytes(b"other weights")
    (project / "model" / "extra.bin").write_bytes(b"new")
    (project / "model" / "generation_config.json").unlink()
    assert sorted(drift(before, lock_now(project / "job.toml"))) == [
        "model/extra.bin: new file",
        "model/generation_config.json: file gone",
        "model/model.safetensors sha256 changed",
    ]


def test_hidden_files_in_a_model_folder_are_not_inputs(project):
    before = locked(project / "job.toml")
    (project / "model" / ".cache").mkdir()
    (project / "model" / ".cache" / "x").write_text("scratch")
    assert drift(before, lock_now(project / "job.toml")) == []


def test_drift_in_the_plan_and_hardware(project):
    before = locked(project / "job.toml")
    after = lock_now(project / "job.toml", hardware="1xH100-80GB")
    changes = drift(before, after)
    assert "hardware.name cpu → H100-80GB" in changes
    assert "plan.backend cpu → cuda" in changes
    assert any(change.startswith("plan.precision fp32 → bf16") for change in changes)


def test_drift_in_the_chat_template(project):
    before = locked(project / "job.toml")
    changes = drift(before, lock_now(project / "job.toml", overrides=("model.template=chatml",)))
    assert "run.template llama3 → chatml" in changes
    assert any(change.startswith("run.template_sha256 ") for change in changes)


def test_drift_in_the_seed_and_overrides(project):
    before = locked(project / "job.toml")
    changes = drift(before, lock_now(project / "job.toml", overrides=("train.seed=5",)))
    assert "run.seed 11 → 5" in changes and "spec.train.seed 11 → 5" in changes
    assert any(change.startswith("lock.overrides ") for change in changes)


def test_drift_in_the_environment_names(project, monkeypatch):
    before = locked(project / "job.toml")
    monkeypatch.setattr(build, "environment_names", lambda spec, plan: ["HF_TOKEN", "WANDB_API_KEY"])
    changes = drift(before, lock_now(project / "job.toml"))
    assert len(changes) == 1 and changes[0].startswith("run.environment ")
    assert "WANDB_API_KEY" in changes[0]


def test_drift_in_a_base_spec(project):
    (project / "base.toml").write_text(SPEC)
    (project / "job.toml").write_text('extends = "base.toml"\n[train]\nmax_steps = 4\n')
    before = locked(project / "job.toml")
    assert before["lock"]["sources"] == ["base.toml", "job.toml"]
    (project / "base.toml").write_text(SPEC.replace("cutoff_len = 128", "cutoff_len = 256"))
    assert drift(before, lock_now(project / "job.toml")) == ["spec.data.cutoff_len 128 → 256"]


def test_hub_inputs_record_the_revision_as_given_and_fetch_nothing(project):
    (project / "job.toml").write_text(
        SPEC.replace('name_or_path = "model"', 'name_or_path = "meta-llama/Llama-3.2-1B"\nrevision = "abc123"')
    )
    before = locked(project / "job.toml")
    assert before["inputs"]["model.name_or_path"] == {
        "path": "meta-llama/Llama-3.2-1B",
        "source": "hub",
        "revision": "abc123",
    }
    changes = drift(before, lock_now(project / "job.toml", overrides=("model.revision=def456",)))
    assert 'inputs."model.name_or_path".revision abc123 → def456' in changes


def test_a_missing_local_input_is_a_user_error(project):
    (project / "data" / "train.json").unlink()
    with pytest.raises(FtcError, match=r"data.datasets\[0\].path: .*does not exist"):
        lock_now(project / "job.toml")


def test_the_lock_names_the_secrets_and_monitor_keys_but_never_their_values(project, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-value")
    monkeypatch.setenv("MY_TOKEN", "my-secret-value")
    (project / "job.toml").write_text(SPEC + '\n[monitor]\nreport_to = ["wandb"]\n\n[launch]\nsecrets = ["MY_TOKEN"]\n')
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    text = (project / "job.toml.lock").read_text()
    environment = tomllib.loads(text)["run"]["environment"]
    assert {"WANDB_API_KEY", "MY_TOKEN", "HF_TOKEN"} <= set(environment)
    assert "secret-value" not in text
