"""A run folder is written whole, and an existing one is never replaced unless asked."""

from __future__ import annotations

import pytest

from ftc.errors import FtcError
from ftc.targets.run_folder import write_run_folder


def test_an_existing_run_folder_is_refused_with_both_ways_forward(tmp_path):
    run_dir = tmp_path / "run"
    write_run_folder(run_dir, {"spec.toml": "first"}, set(), overwrite=False)
    with pytest.raises(FtcError) as refused:
        write_run_folder(run_dir, {"spec.toml": "second"}, set(), overwrite=False)
    assert "already exists" in refused.value.message
    assert "--resume" in refused.value.hint and "--overwrite" in refused.value.hint
    assert (run_dir / "spec.toml").read_text() == "first"  # untouched


def test_overwrite_replaces_the_whole_folder(tmp_path):
    run_dir = tmp_path / "run"
    write_run_folder(run_dir, {"spec.toml": "first", "old.txt": "x"}, set(), overwrite=False)
    write_run_folder(run_dir, {"spec.toml": "second", "run.sh": "#!/bin/sh\n"}, {"run.sh"}, overwrite=True)
    assert sorted(path.name for path in run_dir.iterdir()) == ["run.sh", "spec.toml"]
    assert (run_dir / "spec.toml").read_text() == "second"
    assert (run_dir / "run.sh").stat().st_mode & 0o111
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging left behind


def test_a_resume_with_another_block_expansion_is_refused_by_key(tmp_path, run_folder):
    from ftc.spec.models import Spec
    from ftc.targets.base import Job
    from ftc.targets.continuing import changes_since
    from tests.tiny_runs import cpu_plan, tiny_spec

    spec = tiny_spec(tmp_path / "run", tmp_path / "model", tmp_path / "data.json", method="freeze")
    run_dir = run_folder({**spec, "llama_pro": {"added_layers": 2}})

    def job(sections: dict) -> Job:
        return Job(tmp_path / "job.toml", Spec.model_validate({**spec, **sections}), cpu_plan(), run_dir, "python")

    assert changes_since(run_dir, job({"llama_pro": {"added_layers": 2}})) == []
    assert changes_since(run_dir, job({})) == ["llama_pro.added_layers 2 → None"]
