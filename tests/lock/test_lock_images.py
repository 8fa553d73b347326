"""The images a dataset names are locked: each by its sha256, or above IMAGE_HASH_LIMIT as folder manifests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ftc.errors import FtcError
from ftc.lock import images
from ftc.lock.build import current_lock
from ftc.lock.drift import drift
from ftc.lock.files import lock_path, read_lock, write_lock
from tests.commands import ftc
from tests.lock.test_lock import SPEC, hub_cache, lock_now  # noqa: F401  (hub_cache: the fixture, used by name)

PIL = pytest.importorskip("PIL.Image")
KEY = "data.datasets[0].path"


@pytest.fixture
def project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """The lock tests' project, its dataset captioning three images in data/img (one in a subfolder)."""
    shutil.copytree(tiny_model_dir, tmp_path / "model")
    (tmp_path / "data" / "img" / "more").mkdir(parents=True)
    names = ["img/red.png", "img/green.png", "img/more/blue.png"]
    for name, colour in zip(names, [(200, 0, 0), (0, 200, 0), (0, 0, 200)], strict=True):
        PIL.new("RGB", (8, 8), colour).save(tmp_path / "data" / name)
    records = [
        {"instruction": "Caption it.", "output": f"A {Path(name).stem} square.", "images": [name]} for name in names
    ]
    records.append({"instruction": "And these?", "output": "Red and green.", "images": names[:2]})  # named twice
    (tmp_path / "data" / "train.json").write_text(json.dumps(records))
    (tmp_path / "job.toml").write_text(SPEC)
    return tmp_path


def repaint(path: Path, colour: tuple[int, int, int]) -> None:
    stat = path.stat()
    PIL.new("RGB", (8, 8), colour).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the bytes tell


def test_every_named_image_is_hashed_and_one_changed_image_changes_only_its_hash(project):
    before = lock_now(project / "job.toml")["inputs"][KEY]
    assert before["images"] == images.PER_IMAGE and before["image_count"] == 3
    assert set(before["image_files"]) == {"img/red.png", "img/green.png", "img/more/blue.png"}
    assert before["files"] == {"train.json": before["files"]["train.json"]}  # the data file's own hash is apart
    repaint(project / "data" / "img" / "green.png", (0, 201, 0))
    after = lock_now(project / "job.toml")["inputs"][KEY]["image_files"]
    changed = {name for name in after if after[name] != before["image_files"][name]}
    assert changed == {"img/green.png"}


def test_verify_and_launch_locked_name_the_changed_and_the_removed_image(project):
    assert ftc("lock", "job.toml", "-H", "cpu", cwd=project).returncode == 0
    assert "images" in (project / "job.toml.lock").read_text()
    repaint(project / "data" / "img" / "red.png", (201, 0, 0))
    (project / "data" / "img" / "more" / "blue.png").unlink()
    result = ftc("verify", "job.toml", cwd=project)
    assert result.returncode == 1
    assert "image img/red.png (named by data/train.json): sha256 changed" in result.stdout
    assert "image img/more/blue.png (named by data/train.json): image gone" in result.stdout
    launched = ftc("launch", "job.toml", "-H", "cpu", "--locked", "--dry-run", cwd=project)
    assert launched.returncode == 1 and "image img/red.png" in launched.stdout
    assert "Traceback" not in result.stdout + result.stderr + launched.stdout + launched.stderr


def test_lock_refuses_a_dataset_naming_a_missing_image_by_its_record(project):
    (project / "data" / "img" / "green.png").unlink()
    result = ftc("lock", "job.toml", "-H", "cpu", cwd=project)
    assert result.returncode != 0 and not (project / "job.toml.lock").exists()
    assert "image 'img/green.png' named at" in result.stderr and "record 1" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_above_the_limit_a_manifest_of_the_image_folder_is_locked(project, monkeypatch):
    monkeypatch.setattr(images, "IMAGE_HASH_LIMIT", 2)
    spec = project / "job.toml"
    entry = lock_now(spec)["inputs"][KEY]
    assert entry["images"] == images.MANIFEST and entry["image_count"] == 3
    assert "image_files" not in entry
    # data/img holds data/img/more: one listing covers both, by its path relative to the dataset's folder
    assert list(entry["image_folders"]) == ["img"]
    assert entry["image_folders"]["img"] == images.folder_manifest(project / "data" / "img")
    write_lock(lock_path(spec), lock_now(spec))

    blue = project / "data" / "img" / "more" / "blue.png"
    os.utime(blue, ns=(blue.stat().st_atime_ns, blue.stat().st_mtime_ns + 1))  # touched: the listing changes
    changes = drift(read_lock(lock_path(spec)), lock_now(spec))
    assert changes == ["image folder img (of data/train.json): a file in it was added, removed, resized or modified"]

    blue.unlink()
    changes = drift(read_lock(lock_path(spec)), lock_now(spec))
    assert "data/train.json names images that are gone: img/more/blue.png" in changes


def test_a_manifest_is_cheap_to_make_and_writing_a_lock_still_refuses_a_missing_image(project, monkeypatch):
    from ftc.cli.locking import write_spec_lock
    from ftc.compiler import compile_plan, parse_hardware
    from ftc.models.lookup import architecture_for
    from ftc.spec import load_spec

    monkeypatch.setattr(images, "IMAGE_HASH_LIMIT", 2)
    read = []
    monkeypatch.setattr(images, "hash_files", lambda files: read.extend(files) or {})
    loaded = load_spec(project / "job.toml")
    plan = compile_plan(loaded.spec, parse_hardware("cpu"), architecture_for(loaded.spec, loaded.base_dir))
    current_lock(loaded, plan, writing=True)
    assert read == []  # no image's bytes were read
    (project / "data" / "img" / "red.png").unlink()
    with pytest.raises(FtcError, match=r"image 'img/red.png' named at .*record 0 does not exist"):
        write_spec_lock(loaded, plan)


def test_a_text_dataset_names_no_images_and_the_column_is_found_across_a_chunk_boundary(project, monkeypatch):
    (project / "data" / "text.json").write_text('[{"instruction": "hi", "output": "hello"}]\n')
    assert (
        "images"
        not in lock_now(project / "job.toml", overrides=("data.datasets[0].path=data/text.json",))["inputs"][KEY]
    )
    monkeypatch.setattr(images, "_SCAN_CHUNK", 7)
    file = project / "data" / "train.json"
    assert images._mentions(file, b"images") and not images._mentions(file, b"imagery")
