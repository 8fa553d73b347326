"""metrics.json: what a run logged, kept current on disk while it trains.

Besides the loss, a stage's own series are kept under one name each, whatever the trainer calls
them (trl's DPO says "rewards/margins", its RewardTrainer "margin"), so the report draws every
stage's curves the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftc.fs import atomic_write_text


@dataclass(frozen=True)
class Series:
    name: str  # the key in metrics.json's log entries
    trainer_keys: tuple[str, ...]  # what the trainers log it as; the first one present is taken
    label: str  # axis label in the plots and the summary


def _build_registry(*series: Series) -> dict[str, Series]:
    return {entry.name: entry for entry in series}


# Logged per optimizer step beside the loss, by the stages that have them (rm, dpo, kto, orpo, cpo, ppo, grpo).
SERIES: dict[str, Series] = _build_registry(
    Series("reward_chosen", ("rewards/chosen",), "reward of the chosen reply"),
    Series("reward_rejected", ("rewards/rejected",), "reward of the rejected reply"),
    Series("reward_margin", ("rewards/margins", "margin"), "reward margin (chosen − rejected)"),
    Series("reward_accuracy", ("rewards/accuracies", "accuracy"), "reward accuracy (chosen ranked first)"),
    # orpo, cpo: the SFT term on the chosen reply inside their loss (cpo's is 0 where its weight is)
    Series("nll_loss", ("nll_loss",), "NLL of the chosen reply (the SFT term)"),
    # the rollout stages (ppo, grpo): the mean score of the sampled replies, and how the policy moves
    Series("reward", ("reward",), "reward of the sampled replies (mean)"),
    Series("kl", ("kl",), "KL to the reference (nats per token)"),
    Series("policy_loss", ("policy_loss",), "policy loss (clipped surrogate)"),
    Series("value_loss", ("value_loss",), "value loss"),
    Series("clip_fraction", ("clip_fraction", "clip_ratio/region_mean"), "share of tokens clipped"),
    Series("entropy", ("entropy",), "entropy of the next-token distribution (nats)"),
    # sft: how often the most likely next token is the label, over the trained positions
    Series("token_accuracy", ("mean_token_accuracy",), "token accuracy (top prediction is the label)"),
)


def _series_in(logs: dict[str, Any], prefix: str) -> dict[str, float]:
    """The SERIES a trainer's log dict holds (under `prefix`, "eval_" for an evaluation's), by our names."""
    found = {}
    for series in SERIES.values():
        value = next((logs[prefix + key] for key in series.trainer_keys if prefix + key in logs), None)
        if value is not None:
            found[series.name] = float(value)
    return found


def new_metrics(stage: str, method: str) -> dict[str, Any]:
    return {
        "stage": stage,
        "method": method,
        # {"step", "loss", "learning_rate", "epoch"} per logged optimizer step, plus the SERIES the stage logs
        "log": [],
        "eval_log": [],  # {"step", "eval_loss"} per evaluation, when the run evaluates
        "train_runtime_s": None,
        "startup_s": None,  # process start → the first training step begins
        "first_loss": None,
        "last_loss": None,
    }


def add_trainer_log(metrics: dict[str, Any], step: int, logs: dict[str, Any]) -> None:
    """Fold one of the trainer's log dicts in: a loss entry, an evaluation, or the final train_runtime."""
    if "loss" in logs:
        entry = {
            "step": step,
            "loss": float(logs["loss"]),
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "epoch": float(logs.get("epoch", 0.0)),
        }
        entry.update(_series_in(logs, prefix=""))
        metrics["log"].append(entry)
        metrics["first_loss"] = metrics["log"][0]["loss"]
        metrics["last_loss"] = metrics["log"][-1]["loss"]
    if "eval_loss" in logs:
        evaluated = {"step": step, "eval_loss": float(logs["eval_loss"])}
        evaluated.update({f"eval_{name}": value for name, value in _series_in(logs, prefix="eval_").items()})
        metrics.setdefault("eval_log", []).append(evaluated)
    if "train_runtime" in logs:
        metrics["train_runtime_s"] = float(logs["train_runtime"])


def series_values(metrics: dict[str, Any], name: str) -> list[tuple[int, float]]:
    """(step, value) of one logged series, in step order; empty when the stage does not log it."""
    return [(entry["step"], entry[name]) for entry in metrics["log"] if name in entry]


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    # A reader (a dashboard, a status command) never sees half a file.
    atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")


def read_metrics(path: Path) -> dict[str, Any]:
    """metrics.json as written; raises ValueError when it is not one (the caller names the file)."""
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(metrics, dict) or not isinstance(metrics.get("log"), list):
        raise ValueError("not a metrics file: no 'log' list")
    if not all(isinstance(entry, dict) and "step" in entry and "loss" in entry for entry in metrics["log"]):
        raise ValueError("a 'log' entry lacks its step or loss")
    return metrics
