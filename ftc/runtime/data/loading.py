"""The spec's datasets, read into what the stages train on: conversations, preference pairs, kto examples, texts.

One loader per kind of example; each reads every dataset of `[data]` through its format
(`ftc.records.formats`), with the spec's column mapping, mixes them by weight (`data_mix`) and
names the file and position of any record that does not fit. Files are read by `data_files`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from ftc.errors import RuntimeUserError
from ftc.records.collector import collector_paused
from ftc.records.formats import FORMATS, BadRecord, Kind, formats_of
from ftc.records.images import image_path
from ftc.runtime.data.mixing import hold_out, interleave, mix
from ftc.runtime.data.sources import dataset_records
from ftc.spec.chat_templates import Message
from ftc.spec.models import DataSection, DatasetSection

__all__ = [
    "Conversation",
    "KtoExample",
    "PreferencePair",
    "TextDocument",
    "dataset_conversations",
    "dataset_examples",
    "dataset_records",
    "iter_conversations",
    "iter_texts",
    "load_conversations",
    "load_eval_datasets",
    "load_kto_examples",
    "load_preferences",
    "load_texts",
    "train_eval_split",
    "training_records",
]

T = TypeVar("T")
Parsed = dict[str, list[tuple[str, Any]]]  # by dataset key: (where, the format's parts) of each record


@dataclass(frozen=True)
class Conversation:
    where: str  # file and position, so a later error (a template refusing it) can still point at the record
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None  # function definitions the conversation's tool calls may use
    images: tuple[str, ...] = ()  # image files, in the order of the IMAGE placeholders in `messages`


@dataclass(frozen=True)
class PreferencePair:
    where: str  # file and position of the record
    prompt: list[Message]  # the conversation before the reply (system/user/assistant turns), ends with a user turn
    chosen: str  # the preferred assistant reply
    rejected: str  # the dispreferred one
    images: tuple[str, ...] = ()  # image files, in the order of the IMAGE placeholders in `prompt`


@dataclass(frozen=True)
class KtoExample:
    where: str
    prompt: list[Message]
    completion: str
    label: bool  # True: desirable
    images: tuple[str, ...] = ()  # image files, in the order of the IMAGE placeholders in `prompt`


@dataclass(frozen=True)
class TextDocument:
    where: str
    text: str


@dataclass(frozen=True)
class ExampleKind:
    """What a loader makes from a format's parts, and how to name it to the user."""

    kind: Kind
    item: type
    build: Callable[[str, Any], Any]  # (where, the format's parts) → an item
    noun: str


KINDS: dict[type, ExampleKind] = {
    kind.item: kind
    for kind in (
        ExampleKind(
            "conversation",
            Conversation,
            lambda where, chat: Conversation(where, *chat.parts(), chat.images),
            "conversations",
        ),
        ExampleKind("preference", PreferencePair, lambda where, pair: PreferencePair(where, *pair), "preference pairs"),
        ExampleKind("kto", KtoExample, lambda where, parts: KtoExample(where, *parts), "kto examples"),
        ExampleKind("text", TextDocument, TextDocument, "texts"),
    )
}


def load_conversations(data: DataSection, seed: int = 0) -> list[Conversation]:
    """Formats alpaca, sharegpt, messages; several datasets are mixed by weight (from `seed`), else concatenated."""
    return _load(data, KINDS[Conversation], seed)


def load_preferences(data: DataSection, seed: int = 0) -> list[PreferencePair]:
    """Format preference: a prompt with a chosen and a rejected reply."""
    return _load(data, KINDS[PreferencePair], seed)


def load_kto_examples(data: DataSection, seed: int = 0) -> list[KtoExample]:
    """Format kto: a prompt, a completion and whether it is desirable."""
    return _load(data, KINDS[KtoExample], seed)


def load_texts(data: DataSection, seed: int = 0) -> list[TextDocument]:
    """Format text: plain documents, for pre-training."""
    return _load(data, KINDS[TextDocument], seed)


def iter_conversations(data: DataSection, seed: int = 0) -> Iterator[Conversation]:
    """One lazy pass over the conversations, for `data.streaming`: records are read as they are consumed."""
    return _iterate(data, KINDS[Conversation], seed)


def iter_texts(data: DataSection, seed: int = 0) -> Iterator[TextDocument]:
    """One lazy pass over the documents, for `data.streaming`."""
    return _iterate(data, KINDS[TextDocument], seed)


def train_eval_split(
    items: list[T], data: DataSection, seed: int, parsed: Parsed | None = None
) -> tuple[list[T], list[T]]:
    """(train, eval): `data.eval_datasets` read by the same loader as `items`, or `data.eval_ratio` held out.

    Held-out records are picked from `seed`; every copy of a record lands on the same side.
    """
    if data.eval_datasets:
        return items, load_eval_datasets(data, type(items[0]), parsed)
    if data.eval_ratio == 0:
        return items, []
    train, evaluated = hold_out(items, data.eval_ratio, seed)
    if not train:
        raise RuntimeUserError(
            f"data.eval_ratio = {data.eval_ratio} leaves no record to train on ({len(evaluated)} in all)",
            "lower data.eval_ratio or add data",
        )
    return train, evaluated


def training_records(
    data: DataSection, item: type[T], seed: int, parsed: Parsed | None = None
) -> tuple[list[T] | None, list[T]]:
    """(train, held out) `item`s for a stage that can stream (pt, sft): with data.streaming the training records
    are read while training runs (None here), and only data.eval_datasets is loaded now. `parsed` holds records
    the launch check parsed already (`DataCheck.parsed`): those datasets are not read again."""
    if data.streaming:
        return None, load_eval_datasets(data, item, parsed)
    return train_eval_split(_load(data, KINDS[item], seed, parsed), data, seed, parsed)


def load_eval_datasets(data: DataSection, item: type[T], parsed: Parsed | None = None) -> list[T]:
    """Every example of `data.eval_datasets` (none if there are none), read as `item`s: Conversation, ...."""
    kind = KINDS[item]
    return [
        example
        for index, dataset in enumerate(data.eval_datasets)
        for example in dataset_examples(dataset, kind, f"data.eval_datasets[{index}]", parsed, data.media_dir)
    ]


def dataset_conversations(dataset: DatasetSection) -> list[Conversation]:
    return dataset_examples(dataset, KINDS[Conversation])


def dataset_examples(
    dataset: DatasetSection,
    kind: ExampleKind,
    key: str = "data.datasets",
    parsed: Parsed | None = None,
    media_dir: str | None = None,
) -> list[Any]:
    """Every example of one dataset (at most max_samples); `key` names it in errors. Image paths come out
    absolute: relative ones are under `media_dir` (data.media_dir), else beside the dataset's files."""
    if parsed is not None and key in parsed:
        _check_kind(dataset, kind, key)
        examples = [_images_found(kind.build(where, parts), dataset, media_dir) for where, parts in parsed[key]]
    else:
        examples = list(_examples(dataset, kind, key, media_dir=media_dir))
    if not examples:
        raise RuntimeUserError(f"{key}: dataset {dataset.path} has no records", "point its path at a non-empty file")
    return examples


def _load(data: DataSection, kind: ExampleKind, seed: int, parsed: Parsed | None = None) -> list[Any]:
    with collector_paused():
        sources = [
            dataset_examples(dataset, kind, f"data.datasets[{i}]", parsed, data.media_dir)
            for i, dataset in enumerate(data.datasets)
        ]
    if data.datasets[0].weight is None:  # the spec sets weights on all datasets or on none
        return [item for source in sources for item in source]
    return mix(sources, [dataset.weight for dataset in data.datasets], data.mix_size, seed)


def _iterate(data: DataSection, kind: ExampleKind, seed: int) -> Iterator[Any]:
    def opener(index: int, dataset: DatasetSection) -> Callable[[], Iterator[Any]]:
        return lambda: _examples(dataset, kind, f"data.datasets[{index}]", streaming=True, media_dir=data.media_dir)

    openers = [opener(index, dataset) for index, dataset in enumerate(data.datasets)]
    for index, (open_source, dataset) in enumerate(zip(openers, data.datasets, strict=True)):
        with closing(open_source()) as source:  # an empty source is refused now, not when a mixture reaches it
            if next(source, None) is None:
                raise RuntimeUserError(
                    f"data.datasets[{index}]: dataset {dataset.path} has no records",
                    "point its path at a non-empty file",
                )
    if data.datasets[0].weight is None:
        return (item for open_source in openers for item in open_source())
    return interleave(openers, [dataset.weight for dataset in data.datasets], data.mix_size, seed)


def _check_kind(dataset: DatasetSection, kind: ExampleKind, key: str) -> None:
    if FORMATS[dataset.format].kind != kind.kind:
        takes = ", ".join(repr(name) for name in formats_of(kind.kind))
        raise RuntimeUserError(
            f"{key}.format = {dataset.format!r}, but this stage trains on {kind.noun}, read from format {takes}",
            f"convert {dataset.path} to {takes} (map its fields with [data.datasets.columns]), or use the stage "
            f"that takes {dataset.format!r} data",
        )


def _examples(
    dataset: DatasetSection, kind: ExampleKind, key: str, streaming: bool = False, media_dir: str | None = None
) -> Iterator[Any]:
    _check_kind(dataset, kind, key)
    data_format = FORMATS[dataset.format]
    hint = data_format.hint(dataset.columns)
    for where, record in islice(dataset_records(dataset, streaming), dataset.max_samples):
        try:
            parts = data_format.parse(record, dataset.columns)
        except BadRecord as error:
            raise RuntimeUserError(f"{where}: {error}", hint) from None
        yield _images_found(kind.build(where, parts), dataset, media_dir)


def _images_found(example: Any, dataset: DatasetSection, media_dir: str | None) -> Any:
    """The example with its images' paths made absolute, as the launch check found them (`image_path`)."""
    images = getattr(example, "images", ())
    if not images:
        return example
    folder = Path(dataset.path)
    beside = folder / "-" if folder.is_dir() else folder  # image_path looks in the folder of the file it is given
    return replace(example, images=tuple(str(image_path(name, beside, media_dir)) for name in images))
