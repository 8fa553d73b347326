"""The images a dataset's records name, as a lock records them: each image's sha256, or a folder manifest.

Up to `IMAGE_HASH_LIMIT` images a dataset is locked image by image, so drift names the image that changed.
Above it the lock records, for each folder the images sit in, one sha256 of its files' sorted (relative
path, size, mtime_ns): listing a folder costs a stat per file where hashing costs reading every byte, and
an image replaced in place changes its size or its modification time. Drift then names the folder, and
every named image that is no longer in it.

The records are read with `ftc.records.files` (the reader the runtime and the data check use); only a file
that mentions the images column is parsed, so a text dataset costs one more read at disk speed, not a parse.
A record that cannot be read is skipped: reporting it is the data check's job, before a launch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ftc.lock.inputs import hash_files
from ftc.records.files import dataset_files, dataset_source, file_entries
from ftc.records.images import image_path
from ftc.spec.models import DatasetSection

# Distinct images a dataset may name and still be hashed one by one. A training image is typically
# 50-500 KB, so 4,096 of them are at most ~2 GB: seconds of sha256. LLaVA-style instruction sets name
# 100k-600k images (tens of GB), which would make every `ftc lock` and `ftc verify` take minutes.
IMAGE_HASH_LIMIT = 4096
_SCAN_CHUNK = 1 << 20

PER_IMAGE = "per image"
MANIFEST = "folder manifest"


@dataclass(frozen=True)
class LockedImages:
    """What the lock holds of the images one dataset names."""

    mode: str  # PER_IMAGE or MANIFEST
    count: int  # distinct images the records name
    files: dict[str, str] = field(default_factory=dict)  # PER_IMAGE: image as named → sha256 (those that exist)
    folders: dict[str, str] = field(default_factory=dict)  # MANIFEST: folder → sha256 of its listing
    # Named images that are not there now, with the record that names each; a lock is never written with
    # one (`missing_image_error`), so in a run compared against its lock they are drift.
    missing: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        entry: dict[str, object] = {"images": self.mode, "image_count": self.count}
        if self.mode == PER_IMAGE:
            entry["image_files"] = dict(self.files)
        else:
            entry["image_folders"] = dict(self.folders)
            if self.missing:  # a per-image lock names a missing one by its absent hash already
                entry["missing_images"] = sorted(self.missing)
        return entry


def dataset_images(dataset: DatasetSection, media_dir: Path | None) -> LockedImages | None:
    """The images the records of a local dataset name (its path and media_dir resolved); None where it names none
    or is not read here (the hub, a saved dataset: their files are locked as a whole)."""
    if dataset_source(dataset) != "files":
        return None
    column = dataset.columns.get("images", "images")
    named: dict[str, tuple[Path, str]] = {}  # as named → (where it is, the first record naming it)
    for file in dataset_files(dataset):
        if not _mentions(file, column.encode("utf-8")):
            continue
        for where, record in file_entries(file):
            images = record.get(column) if isinstance(record, dict) else None
            if not isinstance(images, list):
                continue
            for name in images:
                if isinstance(name, str) and name.strip() and name not in named:
                    named[name] = (image_path(name, file, str(media_dir) if media_dir else None), where)
    if not named:
        return None
    present = {name: path for name, (path, _) in named.items() if path.is_file()}
    missing = {name: where for name, (path, where) in named.items() if name not in present}
    if len(named) <= IMAGE_HASH_LIMIT:
        hashed = hash_files(present.values())
        return LockedImages(
            PER_IMAGE, len(named), files={name: hashed[path] for name, path in present.items()}, missing=missing
        )
    root = media_dir or Path(dataset.path if Path(dataset.path).is_dir() else Path(dataset.path).parent)
    folders = _outermost({path.parent for path, _ in named.values()})
    return LockedImages(
        MANIFEST,
        len(named),
        folders={_folder_name(folder, root): folder_manifest(folder) for folder in folders},
        missing=missing,
    )


def missing_image_error(key: str, images: LockedImages) -> tuple[str, str]:
    """What `ftc lock` says when a dataset names an image that is not there: (message, hint)."""
    name, where = next(iter(sorted(images.missing.items())))
    more = f" (and {len(images.missing) - 1} more)" if len(images.missing) > 1 else ""
    return (
        f"{key}: image {name!r} named at {where} does not exist{more}",
        "a lock records the images a dataset names; fix the path or add the file "
        "(`ftc validate --data` lists every one)",
    )


def folder_manifest(folder: Path) -> str:
    """sha256 of (relative path, size, mtime_ns) of every file under `folder`, sorted; hidden entries left out."""
    rows = []
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=True):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True):
                    stat = entry.stat()
                    rows.append(
                        f"{Path(entry.path).relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                    )
    digest = hashlib.sha256()
    for row in sorted(rows):
        digest.update(row.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _outermost(folders: set[Path]) -> list[Path]:
    """The folders none of whose ancestors is among them: each is listed whole, so nothing is listed twice."""
    return sorted(folder for folder in folders if not any(parent in folders for parent in folder.parents))


def _folder_name(folder: Path, root: Path) -> str:
    """A folder by its path relative to the images' root, so a checkout elsewhere locks the same; else absolute."""
    try:
        return folder.relative_to(root).as_posix()
    except ValueError:
        return folder.as_posix()


def _mentions(file: Path, word: bytes) -> bool:
    """Whether `word` occurs in the file's bytes: a file that never names the column names no image."""
    tail = b""
    with file.open("rb") as stream:
        while chunk := stream.read(_SCAN_CHUNK):
            if word in tail + chunk[: len(word)] or word in chunk:
                return True
            tail = chunk[-(len(word) - 1) :] if len(word) > 1 else b""
    return False
