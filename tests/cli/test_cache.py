"""`ftc cache ls|prune`: entries written by the runtime's own writer, listed, and pruned by age or all at once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from ftc.cli.cache import age_text, human_size
from ftc.cli.output import console
from ftc.cli.typer_app import run
from ftc.data_cache.entries import LOCK, TEMPORARY, WRITING_GRACE_S, entries
from ftc.data_cache.key import PreparedKey
from ftc.runtime.data.prepared import write_entry
from ftc.runtime.data.rows import PreparedRows
from ftc.runtime.data.token_rows import TokenRows
from ftc.spec.models import Spec
from tests.tiny_runs import tiny_spec

DAY = 86400
FRESH, STALE = "a" * 32, "b" * 32  # keys of an entry used now and of one no run used for ten days


def tiny_rows() -> PreparedRows:
    ids = np.arange(1, 8, dtype=np.int32)
    rows = TokenRows(ids, ids.copy(), np.array([0, 3, 7], dtype=np.int64))
    return PreparedRows(rows, None, ["2 examples"], records=2)


def written_entry(root: Path, digest: str, tmp_path: Path) -> Path:
    spec = Spec.model_validate(tiny_spec(tmp_path / "run", tmp_path / "model", tmp_path / "data" / "train.jsonl"))
    entry = root / digest
    entry.parent.mkdir(parents=True, exist_ok=True)
    (root / f"{digest}{LOCK}").touch()  # as the runtime's file lock leaves it
    write_entry(entry, PreparedKey(digest, {"stage": "sft"}), spec, tiny_rows(), seconds=0.5)
    return entry


def aged(path: Path, seconds: float) -> None:
    """As if nothing touched it for `seconds`: entries go by meta.json's time, unfinished ones by the folder's."""
    then = time.time() - seconds
    for touched in (path / "meta.json", path):
        if touched.exists():
            os.utime(touched, (then, then))


@pytest.fixture
def cache(prepared_data_cache: Path, tmp_path: Path) -> Path:
    """The default root ($FTC_CACHE/prepared) holding a fresh entry, a stale one and an unfinished preparation."""
    written_entry(prepared_data_cache, FRESH, tmp_path)
    aged(written_entry(prepared_data_cache, STALE, tmp_path), 10 * DAY)
    unfinished = prepared_data_cache / f"{TEMPORARY}{'c' * 32}-4242"
    unfinished.mkdir()
    (unfinished / "train.arrow").write_bytes(b"\0" * 100)
    (prepared_data_cache / f"{'c' * 32}{LOCK}").touch()
    return prepared_data_cache


def ftc(capsys, *args: str) -> tuple[int, str, str]:
    code = run(["cache", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def keys_in(root: Path) -> set[str]:
    return {entry.key for entry in entries(root)}


def test_ls_lists_entries_with_their_data_and_marks_the_unfinished_one(cache, capsys, monkeypatch):
    monkeypatch.setattr(console(), "width", 200)  # one line a row, whatever the terminal
    code, out, _ = ftc(capsys, "ls")
    assert code == 0
    for shown in (FRESH[:12], STALE[:12], "c" * 12, "unfinished", "train.jsonl", "10 d ago", "just now"):
        assert shown in out, shown
    assert "2 entries and 1 unfinished preparation," in out
    assert f"{human_size(sum(entry.size for entry in entries(cache)))} in {cache}" in out


def test_ls_json_is_one_object_per_entry(cache, capsys):
    code, out, _ = ftc(capsys, "ls", "--format", "json")
    assert code == 0
    listed = {item["key"]: item for item in json.loads(out)}
    assert set(listed) == {FRESH, STALE, "c" * 32}
    fresh = listed[FRESH]
    assert fresh["complete"] and fresh["stage"] == "sft" and fresh["records"] == 2 and fresh["rows"] == 2
    assert fresh["tokens"] == 7 and fresh["datasets"][0].endswith("train.jsonl") and fresh["size_bytes"] > 0
    assert not listed["c" * 32]["complete"] and listed["c" * 32]["stage"] is None


def test_ls_of_an_empty_or_missing_root_says_so_in_one_line(tmp_path, capsys):
    code, out, _ = ftc(capsys, "ls", "--dir", str(tmp_path / "nowhere"))
    assert code == 0 and out.count("\n") == 1 and "no prepared data in" in out
    code, out, _ = ftc(capsys, "ls", "--dir", str(tmp_path), "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_prune_without_options_keeps_complete_entries_and_an_unfinished_one_that_may_still_be_written(cache, capsys):
    code, out, _ = ftc(capsys, "prune")
    assert code == 0 and "nothing to prune" in out and "--older-than" in out
    assert keys_in(cache) == {FRESH, STALE, "c" * 32}

    aged(cache / f"{TEMPORARY}{'c' * 32}-4242", WRITING_GRACE_S + 60)
    code, out, _ = ftc(capsys, "prune")
    assert code == 0 and "removed cccccccccccc (unfinished preparation, 100 B" in out and "freed 100 B" in out
    assert keys_in(cache) == {FRESH, STALE}
    assert not (cache / f"{'c' * 32}{LOCK}").exists()
    assert (cache / f"{FRESH}{LOCK}").exists() and (cache / f"{STALE}{LOCK}").exists()


def test_prune_older_than_removes_entries_unused_that_long_and_their_locks(cache, capsys):
    code, out, _ = ftc(capsys, "prune", "--older-than", "7")
    assert code == 0 and f"removed {STALE[:12]} (sft entry" in out and "freed" in out
    assert keys_in(cache) == {FRESH, "c" * 32}
    assert not (cache / f"{STALE}{LOCK}").exists() and (cache / f"{FRESH}{LOCK}").exists()


def test_prune_all_removes_everything(cache, capsys):
    code, out, _ = ftc(capsys, "prune", "--all")
    assert code == 0 and out.count("removed ") == 3
    assert entries(cache) == [] and not list(cache.glob(f"*{LOCK}"))


def test_the_spec_names_its_cache_dir_relative_to_its_folder(tmp_path, capsys):
    folder = tmp_path / "project"
    written_entry(folder / "prepared", FRESH, tmp_path)
    spec = folder / "job.toml"
    spec.write_text(
        '[model]\nname_or_path = "model"\n[data]\ncache_dir = "prepared"\n'
        '[[data.datasets]]\npath = "train.jsonl"\nformat = "alpaca"\n'
        '[train]\nstage = "sft"\nmethod = "lora"\nepochs = 1\n'
    )
    code, out, _ = ftc(capsys, "ls", "--spec", str(spec), "--format", "json")
    assert code == 0, out
    assert [item["key"] for item in json.loads(out)] == [FRESH]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ls", "--spec", "job.toml", "--dir", "cache"), "--spec and --dir both"),
        (("ls", "--older-than", "3"), "`ls` takes neither"),
        (("ls", "--all"), "`ls` takes neither"),
        (("prune", "--older-than", "-1"), "days must be a number of 0 or more"),
        (("prune", "--older-than", "nan"), "days must be a number of 0 or more"),
        (("prune", "--older-than", "3", "--all"), "give one"),
        (("prune", "--format", "json"), "--format is for `ftc cache ls`"),
    ],
)
def test_mistakes_are_messages_with_a_hint(args, expected, capsys, tmp_path):
    code, _, err = ftc(capsys, *args)
    assert code == 1
    assert expected in err and "hint:" in err and "Traceback" not in err


def test_sizes_and_ages_read_as_people_say_them():
    assert [human_size(size) for size in (512, 1536, 5 << 20, 3 << 30, 5 << 40)] == [
        "512 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
        "5120.0 GiB",
    ]
    assert [age_text(seconds) for seconds in (5, 120, 3 * 3600 + 5, 2 * DAY)] == [
        "just now",
        "2 min ago",
        "3 h ago",
        "2 d ago",
    ]
