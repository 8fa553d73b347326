"""What a run was trained on, recorded when it begins so that a resume can prove it continues the same run.

The schedule (which batch each step sees and its learning rate) comes from the spec and plan alone, so the
launcher compares it before submitting a resume (`ftc launch --resume`) and the runtime compares it again
beside the tokenized data's hash (`ftc.runtime.distributed.resume`).
"""

from __future__ import annotations

from typing import Any

FINGERPRINT_FILE = "fingerprint.json"  # in the run folder: what every checkpoint there was trained on


def schedule_of(spec: Any, plan: Any) -> dict[str, Any]:
    """The settings that fix which batch each step sees and its learning rate, by spec or plan key."""
    train = spec.train
    return {
        "train.max_steps": train.max_steps,
        "train.epochs": train.epochs,
        "train.global_batch_size": train.global_batch_size,
        "train.learning_rate": train.learning_rate,
        "train.lr_scheduler": train.lr_scheduler,
        "train.warmup_ratio": train.warmup_ratio,
        "train.weight_decay": train.weight_decay,
        "train.seed": train.seed,
        "data.cutoff_len": spec.data.cutoff_len,
        "plan.micro_batch_size": plan.micro_batch_size.value,
        "plan.gradient_accumulation_steps": plan.gradient_accumulation_steps.value,
        "plan.world_size": plan.world_size.value,
    }


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Each schedule key and the data that changed between the recorded fingerprint and the current one."""
    changes = [
        f"{key} {recorded['schedule'].get(key)!r} → {value!r}"
        for key, value in current["schedule"].items()
        if recorded["schedule"].get(key) != value
    ]
    before, now = recorded["data"], current["data"]
    if before != now:
        changes.append(
            f"data.datasets: the tokenized data differ ({before['examples']} examples, sha256 {before['sha256'][:12]}"
            f" → {now['examples']} examples, sha256 {now['sha256'][:12]})"
        )
    return changes
