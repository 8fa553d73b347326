"""The lock document, built from values the edge gathered. Pure: same values, same bytes.

Shape (TOML): [lock] what was locked; [run] seed, chat template, environment names, the prepared data's
cache key; [versions];
[hardware]; [plan] the plan's decisions; [inputs."KEY"] one per model or dataset the spec reads (a hub
input's commit, where known, beside its revision; a local dataset's images, each hashed or as a folder
manifest, `ftc.lock.images`);
[spec] the spec after extends and overrides, paths as written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ftc.compiler.plan import Plan
from ftc.lock.hub_pins import UNPINNED
from ftc.lock.images import LockedImages

LOCK_FORMAT = 1


@dataclass(frozen=True)
class LockedInput:
    key: str  # where the spec names it, e.g. data.datasets[0].path
    written: str  # the path or hub id as the spec wrote it
    source: str  # "local" or "hub"
    files: dict[str, str] = field(default_factory=dict)  # local: file → sha256
    revision: str | None = None  # hub: as given in the spec; nothing is fetched
    commit: str | None = None  # hub: the revision if a commit, else the one the local cache holds; None if neither
    images: LockedImages | None = None  # local dataset: the images its records name

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.written, "source": self.source}
        if self.source == "hub":
            entry["revision"] = self.revision or UNPINNED
            if self.commit:
                entry["commit"] = self.commit
        else:
            entry["files"] = dict(self.files)
            if self.images is not None:
                entry.update(self.images.to_dict())
        return entry


@dataclass(frozen=True)
class RunFacts:
    seed: int
    template: str
    template_sha256: str  # of the template text the run will use; "" where only the hub knows it
    environment: list[str]  # names of the variables the run reads; never their values
    # The prepared-data cache's key (ftc.data_cache.key): the rows the run trains on, not the cache itself;
    # "" where the run's rows are not cached (then data_cache_off says why).
    data_cache_key: str = ""
    data_cache_off: str = ""


def lock_document(
    *,
    spec_name: str,
    sources: list[str],
    overrides: list[str],
    spec_document: dict[str, Any],
    plan: Plan,
    versions: dict[str, str],
    inputs: list[LockedInput],
    facts: RunFacts,
) -> dict[str, Any]:
    return {
        "lock": {"format": LOCK_FORMAT, "spec": spec_name, "sources": sources, "overrides": overrides},
        "run": {
            "seed": facts.seed,
            "template": facts.template,
            "template_sha256": facts.template_sha256,
            "environment": sorted(set(facts.environment)),
            "data_cache_key": facts.data_cache_key,
            **({"data_cache_off": facts.data_cache_off} if facts.data_cache_off else {}),
        },
        "versions": dict(versions),
        "hardware": asdict(plan.hardware),
        "plan": plan_decisions(plan),
        "inputs": {entry.key: entry.to_dict() for entry in inputs},
        "spec": _without_none(spec_document),
    }


def plan_decisions(plan: Plan) -> dict[str, Any]:
    """What the plan decided, without its reasons or estimates: better wording or a sharper memory
    estimate is not a different run, a different strategy is."""
    values = {name: decision.value for name, decision in plan.decisions().items()}
    return {**_without_none(values), "global_batch_size": plan.global_batch_size, "fits": plan.fits}


def _without_none(value: Any) -> Any:
    # TOML has no null; an unset optional is simply absent.
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value
