"""Every record of every local dataset, read and checked against its format before anything is written.

`ftc launch` runs this before it writes a run folder, and `ftc validate --data` in CI: a truncated file or
a record without its fields is reported at once, every one of them (the first SHOWN, then how many more),
by file and line or record index, instead of by the runtime after the run folder exists.

The reading is the runtime's own (`ftc.records.files`) and so is the check of each record
(`ftc.records.formats`, the one definition of what each format needs), so the two cannot disagree; and
like the runtime, only the first `max_samples` records of a dataset are read. Neither module imports
torch, transformers or datasets: this stays fast and runs where only ftc is installed. Files are read
once, line by line where the type allows (JSONL, CSV, text), so memory stays flat on large ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftc.errors import FtcError, RuntimeUserError
from ftc.records.collector import collector_paused
from ftc.records.files import dataset_files, dataset_source, file_entries
from ftc.records.formats import FORMATS, BadRecord, Chat, DataFormat, KtoParts, Pair
from ftc.records.images import image_path, image_problem
from ftc.spec.models import DataSection, DatasetSection
from ftc.stages import STAGES

SHOWN = 20  # problems listed; the rest are counted


@dataclass
class DataCheck:
    files: int = 0
    records: int = 0
    problems: int = 0
    shown: list[str] = field(default_factory=list)  # the first SHOWN problems, each "where: what"
    hints: dict[str, None] = field(default_factory=dict)  # the hints of the datasets with problems, in order
    unchecked: list[str] = field(default_factory=list)  # datasets (or files) not read here, and why
    seconds: float = 0.0
    # With keep: each dataset's parsed records, (where, the format's parts), by key ("data.datasets[0]"),
    # so that preparing them at launch reads the files once (a dataset not read here is absent).
    parsed: dict[str, list[tuple[str, Any]]] | None = None

    def add(self, problem: str, hint: str) -> None:
        self.problems += 1
        if len(self.shown) < SHOWN:
            self.shown.append(problem)
        self.hints[hint] = None

    def summary(self) -> str:
        line = f"data: {_count(self.files, 'file')}, {_count(self.records, 'record')} checked in {self.seconds:.2f} s"
        if self.unchecked:
            line += "; not read here (the runtime reads them): " + "; ".join(self.unchecked)
        return line

    def error(self) -> FtcError:
        listed = "".join(f"\n  {problem}" for problem in self.shown)
        if self.problems > len(self.shown):
            listed += f"\n  … and {self.problems - len(self.shown):,} more"
        return FtcError(f"{_count(self.problems, 'bad record')} in the data ({self.summary()}):{listed}", self.hint())

    def hint(self) -> str:
        return "; ".join(self.hints)

    def to_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "records": self.records,
            "problems": self.problems,
            "shown": self.shown,
            "unchecked": self.unchecked,
            "seconds": round(self.seconds, 3),
        }


def check_data(
    data: DataSection, keep: bool = False, stage: str | None = None, model_no_images: tuple[str, str] | None = None
) -> DataCheck:
    """Read every dataset and eval dataset of `data` (paths resolved, as the launcher resolves them);
    with `keep`, what each record parsed to is kept in `check.parsed`. With `stage` (train.stage), a record
    with images is a problem where the stage's record says it cannot train on them; with `model_no_images` (why the
    model cannot, and the hint: `ftc.models.lookup.images_refused`), wherever it is."""
    check = DataCheck(parsed={} if keep else None)
    record = STAGES[stage] if stage is not None else None
    no_images = None
    if record is not None and not record.takes_images:
        able = " or ".join(repr(name) for name, other in STAGES.items() if other.takes_images)
        no_images = (
            f"train.stage = {stage!r} cannot train on images: {record.no_images_why}",
            f"train on the images with train.stage = {able}, or leave them out of the records",
        )
    elif model_no_images is not None:
        no_images = model_no_images
    started = time.perf_counter()
    keyed = [(f"data.datasets[{index}]", dataset) for index, dataset in enumerate(data.datasets)]
    keyed += [(f"data.eval_datasets[{index}]", dataset) for index, dataset in enumerate(data.eval_datasets)]
    with collector_paused():
        for key, dataset in keyed:
            # data.streaming changes only when the runtime reads a file, not what is in it: a streamed file is
            # checked whole too, one extra pass at the speed of reading it. Only the hub streams without a copy.
            _check_dataset(check, key, dataset, data.media_dir, no_images)
    check.seconds = time.perf_counter() - started
    return check


def require_good_data(
    data: DataSection, keep: bool = False, stage: str | None = None, model_no_images: tuple[str, str] | None = None
) -> DataCheck:
    """The check, or an FtcError that lists the bad records."""
    check = check_data(data, keep, stage, model_no_images)
    if check.problems:
        raise check.error()
    return check


def _check_dataset(
    check: DataCheck, key: str, dataset: DatasetSection, media_dir: str | None = None, no_images: str | None = None
) -> None:
    source = dataset_source(dataset)
    if source != "files":
        # Reading these needs `datasets` (and the hub, a download): the runtime checks them as it reads them.
        check.unchecked.append(f"{key} {dataset.path} ({'a hub dataset' if source == 'hub' else 'a saved dataset'})")
        return
    data_format = FORMATS[dataset.format]
    hint = data_format.hint(dataset.columns)
    try:
        files = dataset_files(dataset)
    except RuntimeUserError as error:
        check.add(f"{key}: {error.message}", error.hint)
        return
    left = dataset.max_samples  # the runtime reads no further; None: all
    kept = None
    if check.parsed is not None:
        kept = check.parsed[key] = []
    for file in files:
        if left == 0:
            return
        check.files += 1
        try:
            left = _check_file(check, file, data_format, dataset.columns, hint, left, kept, media_dir, no_images)
        except ImportError as error:  # Parquet without pyarrow, where only ftc is installed
            check.unchecked.append(f"{file} (needs {error.name or 'a library'}, not installed here)")
            if check.parsed is not None:
                check.parsed.pop(key, None)  # not whole: the runtime reads it


def _check_file(
    check: DataCheck,
    file: Path,
    data_format: DataFormat,
    columns: dict[str, str],
    hint: str,
    left: int | None,
    kept: list[tuple[str, Any]] | None,
    media_dir: str | None = None,
    no_images: tuple[str, str] | None = None,
) -> int | None:
    """Checks the records of one file, at most `left` of them; returns how many the dataset may still read.
    `no_images`: why a record with images is refused (the stage or the model cannot train on them) and how to fix
    it, None where it is not."""
    for where, entry in file_entries(file):
        if left == 0:
            break
        if isinstance(entry, RuntimeUserError):
            if where != str(file):  # a record that could not be read, not the whole file
                check.records += 1
                left = None if left is None else left - 1
            check.add(entry.message, entry.hint)
            continue
        check.records += 1
        left = None if left is None else left - 1
        try:
            parts = data_format.parse(entry, columns)
        except BadRecord as error:
            check.add(f"{where}: {error}", hint)
            continue
        images = parts.images if isinstance(parts, (Chat, Pair, KtoParts)) else ()
        if images and no_images:
            name = columns.get("images", "images")
            check.add(f"{where}: {name!r} names {len(images)} image(s), but {no_images[0]}", no_images[1])
            continue
        if images and _bad_images(check, where, file, images, columns, media_dir):
            continue
        if kept is not None:
            kept.append((where, parts))
    return left


def _bad_images(
    check: DataCheck, where: str, file: Path, images: tuple[str, ...], columns: dict[str, str], media_dir: str | None
) -> bool:
    """Reports each image of the record that cannot be read; True if there was one."""
    name = columns.get("images", "images")
    relative_to = f"data.media_dir ({media_dir})" if media_dir else "the dataset file's folder"
    bad = False
    for index, image in enumerate(images):
        problem = image_problem(image_path(image, file, media_dir))
        if problem:
            bad = True
            check.add(
                f"{where}: {name!r}[{index}] {image!r} {problem}",
                f"image paths are absolute or relative to {relative_to}; fix the path or the file",
            )
    return bad


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
