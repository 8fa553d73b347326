"""The models the preference stages load beside the trained one: a frozen reference, and the rm stage's reward model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ftc.compiler.plan import Plan
from ftc.methods import METHODS
from ftc.runtime.model.loading import (
    ATTENTION_KERNELS,
    auto_class_of,
    load_errors_explained,
    load_score_model,
    model_config,
)
from ftc.runtime.model.lora import lora_config
from ftc.runtime.model.precision import compute_dtype
from ftc.runtime.model.rope import rope_scaling_arguments
from ftc.spec.models import LoraSection, ModelSection, Spec

SCORE_HEAD = "score"  # transformers' name for the head of every *ForSequenceClassification decoder


def load_reference_model(model: ModelSection, plan: Plan) -> Any:
    """A frozen copy of the base for DPO/KTO's reference log-probabilities, in the compute dtype the plan counts.

    Only full training and freeze need one: with an adapter, trl keeps a frozen copy of the initial
    adapter (the base itself, for the default init) and switches to it. An image+text model's reference is one
    too, its tower and projector included: trl gives it the policy's batch, pixels and all.
    """
    from ftc.runtime.model.vision import vision_parts

    with load_errors_explained(model):
        reference = auto_class_of(vision_parts(model_config(model))).from_pretrained(
            model.name_or_path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            dtype=compute_dtype(plan),
            attn_implementation=ATTENTION_KERNELS[plan.attention.value],
            **rope_scaling_arguments(model),
        )
    return reference.eval().requires_grad_(False)


def reference_model(spec: Spec, plan: Plan) -> Any:
    """DPO's and KTO's reference. With an adapter, trl keeps a frozen copy of the initial adapter beside it
    and switches to it (no second model: None here); full and freeze need a frozen copy of the base,
    loaded in the compute dtype the plan counts."""
    return None if METHODS[spec.train.method].has_adapter else load_reference_model(spec.model, plan)


def reward_model_to_train(model: ModelSection, plan: Plan, method: str) -> Any:
    """The rm stage's model: the base with a one-output score head in place of the LM head (the head starts random)."""
    import torch

    # as load_model: full training keeps fp32 master weights, LoRA a base in the compute dtype
    dtype = torch.float32 if METHODS[method].trains_all_weights else compute_dtype(plan)
    with load_errors_explained(model):
        return load_score_model(model, plan, dtype)


def reward_lora_config(lora: LoraSection, model: Any) -> Any:
    """The adapter on the body; the new score head trains whole and is saved with it (peft's SEQ_CLS task)."""
    config = lora_config(lora, model)
    targets = sorted(set(config.target_modules) - {SCORE_HEAD})
    return replace(config, task_type="SEQ_CLS", target_modules=targets, modules_to_save=[SCORE_HEAD])
