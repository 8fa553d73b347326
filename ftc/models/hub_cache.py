"""Which commit of a hub repository the local Hugging Face cache holds, read from the cache folder by hand.

huggingface_hub would answer too, but importing it costs every `ftc lock` and `ftc verify` far more
than these few stats, and asking it must never reach the network. So this follows its cache layout
exactly (huggingface_hub.constants and file_download.repo_folder_name):

    $HF_HUB_CACHE (else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
    else ~/.cache/huggingface/hub)
      models--{org}--{name}/            datasets--{org}--{name}/ for a dataset
        refs/main                       a file holding the commit sha that branch or tag was at
        snapshots/{commit sha}/         the files of that commit
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RepoType = Literal["model", "dataset"]

_COMMIT = re.compile(r"[0-9a-f]{40}")
DEFAULT_REVISION = "main"  # what huggingface_hub downloads when no revision is given


@dataclass(frozen=True)
class CachedCommit:
    commit: str  # 40 hex digits
    ref: str  # where the cache names it, e.g. refs/main


def hub_cache_dir() -> Path:
    """The cache folder huggingface_hub reads, from the same variables in the same order."""
    home = os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache")), "huggingface"))
    default = os.getenv("HUGGINGFACE_HUB_CACHE", os.path.join(_expand(home), "hub"))
    return Path(_expand(os.getenv("HF_HUB_CACHE", default)))


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def _plain_path(name: str) -> bool:
    return all(part not in ("", ".", "..") for part in name.split("/"))


def is_commit(revision: str | None) -> bool:
    """A revision that names a commit by its full sha: pinned already, nothing to resolve."""
    return revision is not None and _COMMIT.fullmatch(revision) is not None


def repo_folder(repo_id: str, repo_type: RepoType, cache: Path | None = None) -> Path:
    """models--org--name: huggingface_hub's repo_folder_name, each `/` of the id a `--`."""
    return (cache or hub_cache_dir()) / "--".join([f"{repo_type}s", *repo_id.split("/")])


def cached_commit(repo_id: str, repo_type: RepoType, revision: str | None) -> CachedCommit | None:
    """The commit the cache holds for `revision` (a branch or tag; main when None), or None where it holds none.

    Like huggingface_hub offline, a ref counts only when the snapshot it points at is there too.
    """
    ref = revision or DEFAULT_REVISION
    if not (_plain_path(ref) and _plain_path(repo_id)):
        return None  # not a name the hub gives; never read outside the cache
    folder = repo_folder(repo_id, repo_type)
    try:
        commit = (folder / "refs" / ref).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not is_commit(commit) or not (folder / "snapshots" / commit).is_dir():
        return None
    return CachedCommit(commit, f"refs/{ref}")
