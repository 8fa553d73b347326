"""Where the runtime reads a dataset's raw records from: local data files (through `ftc.records.files`, as the
launch check reads them), a folder `Dataset.save_to_disk` wrote, or the hub. The last two need `datasets`,
which only the runtime has: the launch check leaves them to the runtime."""

from __future__ import annotations

from pathlib import Path

from ftc.errors import RuntimeUserError
from ftc.records.files import Records, dataset_files, dataset_source, records_of_files
from ftc.spec.models import DatasetSection


def dataset_records(dataset: DatasetSection, streaming: bool = False) -> Records:
    """(where, record) for every raw record of one dataset: the one reader every format and stage uses.

    The launcher has anchored local paths already; what is neither on disk nor spelled as a path is a hub id.
    """
    source = dataset_source(dataset)
    if source == "hub":
        return hub_records(dataset, streaming)
    if source == "saved":
        return saved_records(Path(dataset.path), dataset.split)
    return records_of_files(dataset_files(dataset))


def saved_records(folder: Path, split: str) -> Records:
    """A folder written by `Dataset.save_to_disk` (or a DatasetDict's, from which `split` is read)."""
    from datasets import DatasetDict, load_from_disk

    saved = load_from_disk(str(folder))  # memory-mapped: rows are read as they are visited
    if isinstance(saved, DatasetDict):
        if split not in saved:
            raise RuntimeUserError(
                f"{folder} has no split {split!r}", f"set data.datasets.split to one of: {', '.join(saved)}"
            )
        saved, folder = saved[split], folder / split
    return ((f"{folder} record {index}", record) for index, record in enumerate(saved))


def hub_records(dataset: DatasetSection, streaming: bool) -> Records:
    """A hub dataset through `datasets.load_dataset` (downloaded and cached, or streamed)."""
    from datasets import load_dataset

    try:
        loaded = load_dataset(dataset.path, split=dataset.split, revision=dataset.revision, streaming=streaming)
    except Exception as error:  # noqa: BLE001 (network, auth, missing split: all shown to the user as one message)
        raise RuntimeUserError(
            f"hub dataset {dataset.path!r} (split {dataset.split!r}) could not be loaded: {error}",
            "check the id, split and revision, the network and HF_TOKEN; or download it and give a local path",
        ) from None
    return ((f"{dataset.path} [{dataset.split}] record {index}", record) for index, record in enumerate(loaded))
