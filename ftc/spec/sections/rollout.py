"""[ppo]: the rollout stages' settings (ppo, grpo); which stage reads which key is on its record
(`ftc.stages`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import Section, rule_error

RewardFunction = Literal["length", "format", "distinct"]


class PpoSection(Section):
    reward_model: str | None = Field(
        default=None,
        min_length=1,
        description="Hub id or local folder of the reward model that scores each reply (the model/ or adapter/ "
        "folder of a train.stage = 'rm' run); relative paths are read from the spec's folder.",
    )
    kl_coef: float = Field(
        default=0.05,
        ge=0,
        le=10,
        description="Weight of the per-token KL penalty to the frozen reference, in reward units per nat; 0: none.",
    )
    clip_range: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Clip of the policy ratio: one update moves a token's probability by at most this fraction.",
    )
    ppo_epochs: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Optimizer updates per rollout batch of train.global_batch_size prompts (grpo: trl's "
        "num_iterations).",
    )
    max_new_tokens: int = Field(
        default=64, ge=1, le=32_768, description="Tokens generated per reply at most, in the rollouts."
    )
    temperature: float = Field(
        default=1.0, gt=0, le=10, description="Sampling temperature of the rollouts (1: the policy's own distribution)."
    )
    gamma: float = Field(default=1.0, ge=0, le=1, description="ppo: discount per generated token in GAE (unitless).")
    lam: float = Field(
        default=0.95, ge=0, le=1, description="ppo: GAE's λ, from 0 (trust the value head) to 1 (sampled returns)."
    )
    clip_range_value: float = Field(
        default=0.2,
        gt=0,
        le=100,
        description="ppo: how far a value estimate may move from its rollout value per update, in reward units.",
    )
    value_loss_coef: float = Field(
        default=0.1, ge=0, le=10, description="ppo: weight of the value head's loss beside the policy loss (unitless)."
    )
    num_generations: int = Field(
        default=8,
        ge=2,
        le=1024,
        description="grpo: replies sampled per prompt, compared within their group; divides train.global_batch_size.",
    )
    reward_functions: list[RewardFunction] = Field(
        default=[],
        description="grpo: built-in rewards summed per reply: length (near target_words), format (matches "
        "reply_pattern), distinct (share of distinct words); each scores 0 to 1.",
    )
    target_words: int = Field(
        default=50, ge=1, le=100_000, description="grpo 'length' reward: the reply length, in words, that scores 1."
    )
    reply_pattern: str | None = Field(
        default=None,
        min_length=1,
        description="grpo 'format' reward: a Python regular expression the whole reply must match to score 1.",
    )

    @field_validator("reply_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        import re

        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise rule_error(
                    f"not a regular expression: {error}",
                    "write a Python regular expression; in a TOML 'literal string' each backslash stays as written",
                    code=Code.FORMAT,
                ) from None
        return pattern
