"""The stage registry: stage name → the module that runs it.

Records only: nothing heavy is imported here, so the launcher can check `stage in STAGES` before
starting anything. A stage module has one function, `run(run_folder)`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageEntry:
    name: str
    module: str  # imported only when the stage runs
    summary: str


def _build_registry(*entries: StageEntry) -> dict[str, StageEntry]:
    return {entry.name: entry for entry in entries}


# The implemented stages and training methods; the spec language names more, for later.
METHODS: tuple[str, ...] = ("full", "freeze", "lora", "qlora")
STAGES: dict[str, StageEntry] = _build_registry(
    StageEntry("pt", "ftc.runtime.stages.pt", "pre-training on raw text; the loss falls on every token"),
    StageEntry("sft", "ftc.runtime.stages.sft", "supervised fine-tuning; the loss falls on the assistant's replies"),
    StageEntry("rm", "ftc.runtime.stages.rm", "reward model: a score head learns to rank chosen over rejected"),
    StageEntry("dpo", "ftc.runtime.stages.dpo", "direct preference optimisation against a frozen reference"),
    StageEntry("kto", "ftc.runtime.stages.kto", "KTO: unpaired desirable / undesirable replies against a reference"),
    StageEntry("orpo", "ftc.runtime.stages.orpo", "odds-ratio preference optimisation: SFT plus a preference term"),
    StageEntry("ppo", "ftc.runtime.stages.ppo", "PPO: sampled replies scored by a reward model, clipped updates, KL"),
    StageEntry("grpo", "ftc.runtime.stages.grpo", "GRPO: each sampled reply's reward against its group's, through trl"),
)
