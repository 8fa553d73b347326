"""Where prepared (tokenized, cut, packed) data is kept between runs, and the key that says which entry is whose.

An entry is a folder named by its key, holding Arrow files and a `meta.json`; it is written under a
temporary name and renamed when complete, so a killed preparation leaves only a `.tmp-…` folder that
no run reads and `ftc cache prune` removes. The key is a hash of everything that decides the rows:

- each input file: its sha256 when it is at most `WHOLE_HASH_LIMIT` bytes; above that its size, its
  modification time and the sha256 of `SAMPLED_BLOCKS` blocks spread over it (reading a 50 GB corpus
  whole on every start would cost more than it saves). A hub dataset or model counts by the commit the
  local hub cache holds; one not there yet (or at no pinned commit) makes the run uncached;
- the tokenizer: the files of the model folder it is read from (tokenizer.json, vocab, merges, ...);
- the template's text, cutoff_len, packing, the stage, each dataset's format, columns, split,
  max_samples and weight, mix_size, eval_ratio and eval_datasets, the seed, the `tokenizers` release, and
  `DATA_CODE_VERSION`,
  which is raised whenever the code that prepares data changes what it makes.

Pure: no torch, no datasets; `ftc lock` records the key (`ftc.data_cache.entries` lists and prunes entries).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ftc.models.hub_cache import cached_commit, hub_cache_dir, is_commit
from ftc.models.lookup import has_vision_tower
from ftc.records.files import dataset_files, dataset_source
from ftc.spec.chat_templates import TEMPLATES
from ftc.spec.models import DatasetSection, Spec
from ftc.stages import STAGES

DATA_CODE_VERSION = 1
WHOLE_HASH_LIMIT = 256 << 20
SAMPLED_BLOCKS = 16
_BLOCK = 1 << 20
# The model-folder files a tokenizer is read from (transformers' names for them): the weights and the model's
# config are left out, so that a changed weight or generation setting keeps the rows it does not change.
_TOKENIZER_FILE_PREFIXES = (
    "tokenizer",
    "special_tokens_map",
    "added_tokens",
    "vocab",
    "merges",
    "chat_template",
    "spiece",
    "sentencepiece",
)
_TOKENIZER_FILE_SUFFIXES = (".tiktoken",)


@dataclass(frozen=True)
class PreparedKey:
    digest: str  # "" when the run's data cannot be cached (then `uncached` says why)
    parts: dict[str, Any]
    uncached: str | None = None


def cache_root(spec: Spec) -> Path:
    """data.cache_dir, else $FTC_CACHE, else a folder beside the Hugging Face hub cache."""
    if spec.data.cache_dir:
        return Path(spec.data.cache_dir).expanduser()
    return default_cache_root()


def default_cache_root() -> Path:
    """Where a spec without data.cache_dir keeps its entries: $FTC_CACHE/prepared, else beside the hub cache."""
    if os.getenv("FTC_CACHE"):
        return Path(os.environ["FTC_CACHE"]).expanduser() / "prepared"
    return hub_cache_dir().parent / "ftc" / "prepared"


def entry_of(spec: Spec, key: PreparedKey) -> Path:
    """The folder a complete entry of `key` has (`ftc.data_cache.entries.complete` says whether it does)."""
    return cache_root(spec) / key.digest


def prepared_key(spec: Spec) -> PreparedKey:
    """The key of a spec whose local paths are absolute (as the launcher and the run folder hold them)."""
    data = spec.data
    if not STAGES[spec.train.stage].cached_rows:
        return PreparedKey("", {}, f"the {spec.train.stage} stage hands its records to trl, which tokenizes them")
    if not data.cache:
        return PreparedKey("", {}, "data.cache = false")
    if has_vision_tower(spec):
        # Image rows keep their texts and image files; the processor encodes them as each batch is made.
        return PreparedKey("", {}, "an image+text model: the processor makes each batch from its texts and images")
    if data.streaming:
        return PreparedKey("", {}, "data.streaming reads and encodes records while training runs")
    try:
        parts = {
            "data_code": DATA_CODE_VERSION,
            "tokenizers": _version("tokenizers"),  # the library that encodes: another release may split otherwise
            "stage": spec.train.stage,
            "seed": spec.train.seed,
            "cutoff_len": data.cutoff_len,
            "packing": data.packing,
            "mix_size": data.mix_size,
            "eval_ratio": data.eval_ratio,
            "template": _template(spec),
            "tokenizer": _tokenizer(spec),
            "datasets": [_dataset(dataset) for dataset in data.datasets],
            "eval_datasets": [_dataset(dataset) for dataset in data.eval_datasets],
        }
    except _Uncacheable as reason:
        return PreparedKey("", {}, str(reason))
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return PreparedKey(hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], parts)


class _Uncacheable(Exception):
    pass


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def _template(spec: Spec) -> str:
    if spec.model.template != "auto":
        return hashlib.sha256(TEMPLATES[spec.model.template].jinja().encode("utf-8")).hexdigest()
    return "auto"  # the tokenizer's own template: its files are in the key


def _tokenizer(spec: Spec) -> dict[str, str]:
    written = spec.model.name_or_path
    folder = Path(written)
    if folder.is_dir():
        return {
            file.name: file_fingerprint(file)
            for file in sorted(folder.iterdir())
            if file.is_file()
            and (file.name.startswith(_TOKENIZER_FILE_PREFIXES) or file.name.endswith(_TOKENIZER_FILE_SUFFIXES))
        }
    return {"hub": _hub_commit(written, "model", spec.model.revision)}


def _dataset(dataset: DatasetSection) -> dict[str, Any]:
    described = dataset.model_dump(mode="json", exclude={"path"})
    source = dataset_source(dataset)
    if source == "hub":
        described["hub"] = _hub_commit(dataset.path, "dataset", dataset.revision)
    else:
        root = Path(dataset.path)
        files = dataset_files(dataset) if source == "files" else _all_files(root)
        # By name within the dataset, not by absolute path: a checkout elsewhere is the same data.
        described["files"] = {_name_in(file, root): file_fingerprint(file) for file in files}
    return described


def _hub_commit(repo_id: str, repo_type: str, revision: str | None) -> str:
    if is_commit(revision):
        return f"{repo_id}@{revision}"
    cached = cached_commit(repo_id, repo_type, revision)
    if cached is None:
        raise _Uncacheable(f"{repo_id} is not in the local hub cache yet, so its commit is unknown")
    return f"{repo_id}@{cached.commit}"


def _name_in(file: Path, root: Path) -> str:
    return file.relative_to(root).as_posix() if root.is_dir() else file.name


def _all_files(folder: Path) -> list[Path]:
    return sorted(file for file in folder.rglob("*") if file.is_file())


def file_fingerprint(file: Path) -> str:
    """sha256 of the whole file, or for a large one of its size, mtime and sampled blocks (see the module)."""
    size = file.stat().st_size
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        if size <= WHOLE_HASH_LIMIT:
            while chunk := stream.read(_BLOCK):
                digest.update(chunk)
            return digest.hexdigest()
        digest.update(f"{size}:{file.stat().st_mtime_ns}".encode())
        for block in range(SAMPLED_BLOCKS):
            stream.seek((size - _BLOCK) * block // (SAMPLED_BLOCKS - 1))
            digest.update(stream.read(_BLOCK))
    return "sampled:" + digest.hexdigest()
