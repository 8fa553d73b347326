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
from ftc.models.lookup import architecture_for
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


@pytest.fixture(autouse=True)
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache of the test's own, so that the machine's real one never decides a result."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


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
    weights = project / "model" / "model.safetensors"
    changed = bytearray(weights.read_bytes())
    changed[-1] ^= 0xFF  # other weights, the header still whole: a damaged file is refused before any lock
    weights.write_bytes(bytes(changed))
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


# -- hub inputs: locked at the commit the local Hugging Face cache holds ----------------------------
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
HUB_MODEL = "meta-llama/Llama-3.2-1B"


def cache_holds(cache: Path, repo_id: str, commit: str, ref: str = "main", repo_type: str = "model") -> None:
    """Lay out what `hf download` leaves: refs/REF holding the sha (no newline), and that commit's snapshot."""
    repo = cache / "--".join([f"{repo_type}s", *repo_id.split("/")])
    (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)


def unwrapped(text: str) -> str:
    """The console wraps long lines to the terminal's width (80 in a pipe); the words are what count."""
    return " ".join(text.split())


@pytest.fixture
def hub_project(project: Path) -> Path:
    (project / "job.toml").write_text(SPEC.replace('name_or_path = "model"', f'name_or_path = "{HUB_MODEL}"'))
    return project


def test_an_unpinned_hub_model_is_locked_at_the_cached_commit_and_says_so(hub_project, hub_cache):
    cache_holds(hub_cache, HUB_MODEL, COMMIT)
    result = ftc("lock", "job.toml", "-H", "cpu", cwd=hub_project)
    assert result.returncode == 0, result.stderr
    assert (
        f"model.name_or_path: {HUB_MODEL} unpinned; locked at the cached commit {COMMIT[:12]}… (refs/main)"
        in unwrapped(result.stdout)
    )
    assert "warning" not in result.stderr
    entry = read_lock(hub_project / "job.toml.lock")["inputs"]["model.name_or_path"]
    assert entry == {"path": HUB_MODEL, "source": "hub", "revision": "unpinned", "commit": COMMIT}


def test_a_hub_model_the_cache_lacks_warns_naming_the_key_that_pins_it(hub_project, hub_cache):
    cache_holds(hub_cache, "meta-llama/Llama-3.2-3B", COMMIT)  # another repository is no answer
    result = ftc("lock", "job.toml", "-H", "cpu", cwd=hub_project)
    assert result.returncode == 0, result.stderr
    assert f"warning: model.name_or_path: {HUB_MODEL} unpinned" in result.stderr
    assert "set model.revision to a commit sha" in result.stderr and str(hub_cache) in result.stderr
    assert "commit" not in read_lock(hub_project / "job.toml.lock")["inputs"]["model.name_or_path"]


def test_a_ref_without_its_snapshot_is_not_a_cached_commit(hub_project, hub_cache):
    cache_holds(hub_cache, HUB_MODEL, COMMIT)
    shutil.rmtree(hub_cache / "models--meta-llama--Llama-3.2-1B" / "snapshots" / COMMIT)
    assert "commit" not in lock_now(hub_project / "job.toml")["inputs"]["model.name_or_path"]


def test_a_named_revision_resolves_through_its_own_ref_and_a_sha_needs_no_cache(hub_project, hub_cache):
    cache_holds(hub_cache, HUB_MODEL, COMMIT, ref="main")
    cache_holds(hub_cache, HUB_MODEL, OTHER_COMMIT, ref="v1.0")
    spec = hub_project / "job.toml"
    assert lock_now(spec, overrides=("model.revision=v1.0",))["inputs"]["model.name_or_path"]["commit"] == OTHER_COMMIT
    pinned = lock_now(spec, overrides=(f"model.revision={'a' * 40}",))["inputs"]["model.name_or_path"]
    assert pinned == {"path": HUB_MODEL, "source": "hub", "revision": "a" * 40, "commit": "a" * 40}


def test_a_hub_dataset_is_resolved_in_the_dataset_cache(project, hub_cache):
    (project / "job.toml").write_text(SPEC.replace('path = "data/train.json"', 'path = "tatsu-lab/alpaca"'))
    cache_holds(hub_cache, "tatsu-lab/alpaca", COMMIT, repo_type="dataset")
    entry = lock_now(project / "job.toml")["inputs"]["data.datasets[0].path"]
    assert entry == {"path": "tatsu-lab/alpaca", "source": "hub", "revision": "unpinned", "commit": COMMIT}
    cache_holds(hub_cache, "tatsu-lab/alpaca", OTHER_COMMIT, repo_type="model")  # a model of that name is not it
    assert lock_now(project / "job.toml")["inputs"]["data.datasets[0].path"]["commit"] == COMMIT


def test_launch_locked_refuses_an_unpinned_hub_input_unless_allowed(hub_project):
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=hub_project).returncode == 0
    refused = ftc("launch", "job.toml", "-H", "cpu", "--locked", "--dry-run", cwd=hub_project)
    assert refused.returncode == 1
    assert "holds no commit for model.name_or_path" in refused.stderr and "--allow-unpinned" in refused.stderr
    assert "model.revision" in refused.stderr and "Traceback" not in refused.stderr
    assert not (hub_project / "runs").exists()
    allowed = ftc("launch", "job.toml", "-H", "cpu", "--locked", "--allow-unpinned", "--dry-run", cwd=hub_project)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (hub_project / "runs" / "locked" / "run.sh").is_file()


def test_verify_and_launch_locked_report_drift_when_the_cache_moves_to_another_commit(hub_project, hub_cache):
    cache_holds(hub_cache, HUB_MODEL, COMMIT)
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=hub_project).returncode == 0
    clean = ftc("verify", "job.toml", cwd=hub_project)
    assert clean.returncode == 0 and "matches" in clean.stdout, clean.stdout + clean.stderr
    assert ftc("launch", "job.toml", "-H", "cpu", "--locked", "--dry-run", cwd=hub_project).returncode == 0
    cache_holds(hub_cache, HUB_MODEL, OTHER_COMMIT)  # `hf download` fetched a newer main
    drifted = ftc("verify", "job.toml", cwd=hub_project)
    assert drifted.returncode == 1
    assert (
        f"model.name_or_path: {HUB_MODEL} was locked at commit {COMMIT[:12]}…; the Hugging Face cache now holds "
        f"{OTHER_COMMIT[:12]}…" in unwrapped(drifted.stdout)
    )
    refused = ftc("launch", "job.toml", "-H", "cpu", "--locked", "--dry-run", "--overwrite", cwd=hub_project)
    assert refused.returncode == 1 and "--locked refuses" in refused.stderr


def test_the_lock_records_the_prepared_datas_key_and_says_when_only_it_moved(project, monkeypatch):
    from ftc.data_cache import key

    before = locked(project / "job.toml")
    assert len(before["run"]["data_cache_key"]) == 32 and "data_cache_off" not in before["run"]
    # What only the key sees: ftc's data preparation makes other rows from the same files and settings.
    monkeypatch.setattr(key, "DATA_CODE_VERSION", key.DATA_CODE_VERSION + 1)
    (change,) = drift(before, lock_now(project / "job.toml"))
    assert change.startswith("the prepared data's key") and "changed what the run trains on" in change


def test_a_run_without_a_cache_locks_why_instead_of_a_key(project):
    (project / "job.toml").write_text(SPEC.replace("[data]", "[data]\ncache = false"))
    run = locked(project / "job.toml")["run"]
    assert (run["data_cache_key"], run["data_cache_off"]) == ("", "data.cache = false")
