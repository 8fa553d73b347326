"""ftc reads the Hugging Face cache by hand; these hold it to huggingface_hub's own answers, folder and layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftc.models.hub_cache import cached_commit, hub_cache_dir, is_commit, repo_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CACHE_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"HF_HOME": "~/hf-home"},
        {"XDG_CACHE_HOME": "/xdg"},
        {"HF_HOME": "/hf-home", "HUGGINGFACE_HUB_CACHE": "/legacy"},
        {"HF_HOME": "/hf-home", "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HUB_CACHE": "~/hub-cache"},
    ],
)
def test_the_cache_folder_is_the_one_huggingface_hub_uses(environment):
    child = {key: value for key, value in os.environ.items() if key not in _CACHE_VARIABLES} | environment
    code = (
        "import json; from huggingface_hub import constants; from ftc.models.hub_cache import hub_cache_dir; "
        "print(json.dumps([constants.HF_HUB_CACHE, str(hub_cache_dir())]))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=child, capture_output=True, text=True, check=True)
    theirs, ours = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(ours) == Path(theirs)


def test_a_cached_commit_is_the_snapshot_huggingface_hub_would_load(tmp_path, monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert hub_cache_dir() == tmp_path
    repo = repo_folder("org/name", "model")
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    theirs = try_to_load_from_cache("org/name", "config.json", cache_dir=tmp_path)
    assert theirs == str(repo / "snapshots" / COMMIT / "config.json")
    cached = cached_commit("org/name", "model", None)
    assert cached is not None and (cached.commit, cached.ref) == (COMMIT, "refs/main")
    assert cached_commit("org/name", "dataset", None) is None  # a dataset lives in datasets--org--name
    assert cached_commit("org/name", "model", "v2") is None
    assert cached_commit("../name", "model", None) is None


def test_only_a_full_sha_is_a_commit():
    assert is_commit(COMMIT) and not is_commit(COMMIT[:12]) and not is_commit("main") and not is_commit(None)
