"""The models the preference stages load beside `ftc.runtime.model.loading`'s: a frozen reference and a reward model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.runtime.model.loading import ADAPTER_METHODS, ATTENTION_KERNELS, _load_errors_explained, lora_config
from ftc.spec.models import LoraSection, ModelSection, Spec

REWARD_METHODS = ("full", "lora")  # a new score head must train: freeze and qlora would leave it out or quantize it
SCORE_HEAD = "score"  # transformers' name for the head of every *ForSequenceClassification decoder


def _compute_dtype(plan: Plan) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[plan.precision.value]


def load_reference_model(model: ModelSection, plan: Plan) -> Any:
    """A frozen copy of the base for DPO/KTO's reference log-probabilities, in the compute dtype the plan counts.

    Only full training and freeze need one: with an adapter, trl keeps a frozen copy of the initial
    adapter (the base itself, for the default init) and switches to it.
    """
    from transformers import AutoModelForCausalLM

    with _load_errors_explained(model):
        reference = AutoModelForCausalLM.from_pretrained(
            model.name_or_path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            dtype=_compute_dtype(plan),
            attn_implementation=ATTENTION_KERNELS[plan.attention.value],
        )
    return reference.eval().requires_grad_(False)


def reference_model(spec: Spec, plan: Plan) -> Any:
    """DPO's and KTO's reference. With an adapter, trl keeps a frozen copy of the initial adapter beside it
    and switches to it (no second model: None here); full and freeze need a frozen copy of the base,
    loaded in the compute dtype the plan counts."""
    return None if spec.train.method in ADAPTER_METHODS else load_reference_model(spec.model, plan)


def load_reward_model(model: ModelSection, plan: Plan, method: str) -> Any:
    """The base with a one-output score head in place of the LM head (the head starts random)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    if method not in REWARD_METHODS:
        raise RuntimeUserError(
            f"train.stage = 'rm' does not support train.method = {method!r} yet",
            f"use one of: {', '.join(REWARD_METHODS)}",
        )
    with _load_errors_explained(model):
        return AutoModelForSequenceClassification.from_pretrained(
            model.name_or_path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            num_labels=1,
            # as load_model: full training keeps fp32 master weights, LoRA a base in the compute dtype
            dtype=torch.float32 if method == "full" else _compute_dtype(plan),
            attn_implementation=ATTENTION_KERNELS[plan.attention.value],
        )


def reward_lora_config(lora: LoraSection, model: Any) -> Any:
    """The adapter on the body; the new score head trains whole and is saved with it (peft's SEQ_CLS task)."""
    config = lora_config(lora, model)
    targets = sorted(set(config.target_modules) - {SCORE_HEAD})
    return replace(config, task_type="SEQ_CLS", target_modules=targets, modules_to_save=[SCORE_HEAD])
