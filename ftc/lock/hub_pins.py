"""Which commit each hub input of a lock stands for, and what to tell the user about the ones with none.

A hub id without a commit is whatever its branch points at on the day a run downloads it, so a lock
that records only "unpinned" proves nothing about it. The lock resolves such an input, offline, to
the commit the local Hugging Face cache holds (the one a run would load now), and says so; where the
cache holds none, it warns and names the key that pins it.
"""

from __future__ import annotations

from typing import Any

from ftc.models.hub_cache import DEFAULT_REVISION, RepoType, cached_commit, hub_cache_dir, is_commit

UNPINNED = "unpinned"  # what a lock records as the revision of a hub input the spec gives none


def repo_type_of(key: str) -> RepoType:
    """data.datasets[0].path names a dataset repository; every other input a model repository."""
    return "dataset" if key.startswith("data.") else "model"


def revision_key(key: str) -> str | None:
    """The spec key that pins an input's revision, or None where the spec has none (adapter, reward model)."""
    if key == "model.name_or_path":
        return "model.revision"
    if key.startswith("data.") and key.endswith(".path"):
        return key.removesuffix(".path") + ".revision"
    return None


def locked_commit(key: str, repo_id: str, revision: str | None) -> str | None:
    """The commit a hub input is locked at: its revision if that is a commit, else what the cache holds for it."""
    if is_commit(revision):
        return revision
    cached = cached_commit(repo_id, repo_type_of(key), revision)
    return cached.commit if cached else None


def pin_notes(inputs: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(notes, warnings) for `ftc lock`: a line per hub input locked at a cached commit, or left without one."""
    notes, warnings = [], []
    for key, entry in inputs.items():
        if entry.get("source") != "hub":
            continue
        revision, commit = entry.get("revision", UNPINNED), entry.get("commit")
        if commit == revision:
            continue  # pinned by the spec itself: nothing was resolved
        ref = f"refs/{DEFAULT_REVISION if revision == UNPINNED else revision}"
        given = UNPINNED if revision == UNPINNED else f"at revision {revision}"
        if commit:
            notes.append(f"{key}: {entry['path']} {given}; locked at the cached commit {short(commit)} ({ref})")
        else:
            warnings.append(
                f"{key}: {entry['path']} {given}, and the Hugging Face cache ({hub_cache_dir()}) holds no {ref}: "
                f"the lock cannot tell which commit a run will get; {_how_to_pin(key, entry['path'])}"
            )
    return notes, warnings


def short(commit: str) -> str:
    return f"{commit[:12]}…"


def unpinned_inputs(inputs: dict[str, Any]) -> list[str]:
    """The keys of the hub inputs a lock recorded no commit for."""
    return [key for key, entry in inputs.items() if entry.get("source") == "hub" and not entry.get("commit")]


def how_to_pin_all(keys: list[str]) -> str:
    """One hint for the --locked refusal: the spec keys that pin these inputs, where the spec has them."""
    pins = [pin for pin in map(revision_key, keys) if pin]
    pin = f"set {', '.join(pins)} to a commit sha, or " if pins else ""
    return f"{pin}download the input(s) so that the Hugging Face cache holds them, and lock again"


def _how_to_pin(key: str, repo_id: str) -> str:
    dataset = " --repo-type dataset" if repo_type_of(key) == "dataset" else ""
    download = f"download it (`hf download {repo_id}{dataset}`)"
    pin = revision_key(key)
    if pin:
        return f"set {pin} to a commit sha, or {download} and lock again"
    return f"{download} and lock again, or point {key} at a local folder"
