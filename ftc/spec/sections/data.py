"""[data] and its [[data.datasets]]: files or hub ids, formats, column mapping, mixing, evaluation, streaming."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import DataFormat, Section, rule_error

# The fields each data format reads from a record, by our names; [data.datasets.columns] maps them to the file's.
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "input", "output", "system", "history", "images"),
    "sharegpt": ("conversations", "system", "tools", "images"),
    "messages": ("messages", "tools", "images"),
    "preference": ("messages", "prompt", "instruction", "input", "system", "history", "chosen", "rejected", "images"),
    "kto": ("messages", "prompt", "instruction", "input", "system", "history", "completion", "label", "images"),
    "text": ("text",),
}


class DatasetSection(Section):
    path: str | None = Field(
        default=None,
        min_length=1,
        description="Local file or folder (relative to the spec), or a hub id; or give name instead.",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        description="A dataset named in data.registry (an LLaMA-Factory dataset_info.json): its file or hub id, "
        "format and column mapping come from there when the spec is loaded; keys written here win.",
    )
    format: DataFormat = Field(default="alpaca", description="How records are shaped.")
    split: str = Field(
        default="train", min_length=1, description="Split to read from a hub dataset or a saved DatasetDict folder."
    )
    revision: str | None = Field(default=None, description="Hub dataset revision (branch, tag or commit).")
    max_samples: int | None = Field(default=None, ge=1, description="Use at most this many records (the first ones).")
    columns: dict[str, str] = Field(
        default={},
        description="Our field name → the file's column name, for files that name fields their own way.",
    )
    weight: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="Share of the mixture, relative to the other datasets' weights; set on all datasets or none.",
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        data_format = info.data.get("format")  # absent when the format itself was invalid
        fields = FORMAT_FIELDS.get(data_format, ())
        unknown = sorted(set(columns) - set(fields))
        if data_format and unknown:
            raise rule_error(
                f"{', '.join(repr(name) for name in unknown)} is no field of the {data_format!r} format",
                f"the fields of {data_format!r} are: {', '.join(fields)}",
                code=Code.UNKNOWN_KEY,
            )
        return columns

    @model_validator(mode="after")
    def _path_or_name(self) -> DatasetSection:
        if self.path is None:
            raise rule_error(
                "a dataset needs a path" + (f"; name = {self.name!r} was not looked up" if self.name else ""),
                "give path, or name with data.registry (read when the spec is loaded from its file)",
                code=Code.MISSING,
            )
        return self


class DataSection(Section):
    datasets: list[DatasetSection] = Field(min_length=1, description="One or more datasets, mixed.")
    registry: str | None = Field(
        default=None,
        min_length=1,
        description="An LLaMA-Factory dataset_info.json (relative to the spec) that names datasets: a "
        "[[data.datasets]] entry with name = '...' reads its file or hub id, formatting (alpaca, sharegpt), "
        "ranking, columns and tags from there, so an LLaMA-Factory data folder works as it is.",
    )
    cutoff_len: int = Field(default=1024, ge=8, le=1_048_576, description="Maximum tokens per example.")
    packing: bool = Field(
        default=False,
        description="Pack several examples into each row of cutoff_len tokens (pt and sft); they never attend "
        "to one another.",
    )
    mix_size: int | None = Field(
        default=None,
        ge=1,
        description="Examples in a weighted mixture (default: the datasets' sizes summed); a dataset whose share "
        "exceeds its size is repeated, one below it is sampled without replacement, both from train.seed.",
    )
    eval_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="Fraction of the training examples held out for evaluation (0: none)."
    )
    eval_datasets: list[DatasetSection] = Field(
        default=[], description="Datasets to evaluate on instead of a held-out eval_ratio."
    )
    cache: bool = Field(
        default=True,
        description="Keep the prepared (tokenized, cut, packed) rows in the cache, so that a restart, a resume or "
        "another rank reads them instead of preparing them again (pt and sft).",
    )
    cache_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Where prepared data is kept (relative to the spec); default $FTC_CACHE/prepared, else "
        "ftc/prepared beside the Hugging Face hub cache. On a cluster: a folder every node sees.",
    )
    media_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Folder (relative to the spec) that records' image paths are relative to; default: each "
        "dataset file's own folder. An absolute image path is read as it is. Records with images train under "
        "the sft, dpo and kto stages; the others refuse them.",
    )
    image_max_pixels: int | None = Field(
        default=None,
        ge=1,
        description="Largest image, in pixels (height × width), an image+text model's processor keeps: a larger one is "
        "scaled down, its aspect kept, as the processor does (Qwen2-VL's max_pixels). It bounds the image tokens "
        "the plan adds to each row; default: the processor's own bound. A fixed-resolution tower (LLaVA-1.5, Gemma 3) "
        "resizes every image to its own size, so there it changes neither the tokens nor the plan.",
    )
    image_min_pixels: int | None = Field(
        default=None,
        ge=1,
        description="Smallest image, in pixels, an image+text model's processor keeps: a smaller one is scaled up "
        "(Qwen2-VL's min_pixels); default: the processor's own bound.",
    )
    streaming: bool = Field(
        default=False,
        description="Read and encode records while training instead of loading them first (pt and sft, with "
        "train.max_steps); JSONL, CSV, text and Parquet stream, a JSON list is read whole.",
    )

    @model_validator(mode="after")
    def _one_mixing_and_eval_rule(self) -> DataSection:
        low, high = self.image_min_pixels, self.image_max_pixels
        if low is not None and high is not None and low > high:
            raise rule_error(
                f"image_min_pixels ({low}) is above image_max_pixels ({high}): no image size satisfies both",
                "lower data.image_min_pixels or raise data.image_max_pixels",
                at="data.image_min_pixels",
                code=Code.CONFLICT,
            )
        weighted = [dataset.weight is not None for dataset in self.datasets]
        if any(weighted) and not all(weighted):
            raise rule_error(
                "weight is set on some datasets but not all",
                "give every data.datasets a weight, or none",
                code=Code.CONFLICT,
            )
        if self.mix_size is not None and not any(weighted):
            raise rule_error(
                "mix_size sizes a weighted mixture, but no dataset has a weight",
                "set datasets' weight",
                code=Code.CONFLICT,
            )
        named = [d.name for d in (*self.datasets, *self.eval_datasets) if d.name is not None]
        if named and self.registry is None:
            raise rule_error(
                f"dataset name {named[0]!r} needs a registry to look it up in",
                "set data.registry = 'data/dataset_info.json', or give the dataset's path",
                code=Code.MISSING,
            )
        if self.eval_ratio > 0 and self.eval_datasets:
            raise rule_error(
                "eval_ratio and eval_datasets are both set", "keep one way to evaluate", code=Code.CONFLICT
            )
        if any(dataset.weight is not None for dataset in self.eval_datasets):
            raise rule_error(
                "eval_datasets are read whole, not mixed: a weight there means nothing", "remove it", code=Code.CONFLICT
            )
        if self.streaming and self.eval_ratio > 0:
            raise rule_error(
                "a streamed dataset has no known size to hold a fraction out of",
                "give [[data.eval_datasets]] instead",
                code=Code.CONFLICT,
            )
        return self
