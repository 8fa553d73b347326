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
