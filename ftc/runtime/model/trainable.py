"""The causal LM as the method trains it: every weight (`full`), the last layers (`freeze`), a LoRA
adapter on a base held in the plan's precision (`lora`) or in 4 or 8 bits (`qlora`), or OFT's rotations (`oft`);
with [llama_pro], the added blocks alone, whole (`freeze`) or through a LoRA adapter (`lora`)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.methods import METHODS
from ftc.runs.folder import RunFolder
from ftc.runtime.model.block_expansion import expand_for_spec
from ftc.runtime.model.freeze import freeze_all_but
from ftc.runtime.model.loading import load_model
from ftc.runtime.model.lora import lora_config, with_adapter
from ftc.runtime.model.lora_inits import BASE_CHANGING_INITS, INITIAL_ADAPTER, loftq_init, save_initial_adapter
from ftc.runtime.model.oft import oft_config
from ftc.runtime.model.vision import adapter_scope, apply_vision_section, vision_parts
from ftc.spec.models import LoraSection, OftSection, Spec

# peft's config for the section that shapes the method's adapter (Spec.adapter_section)
ADAPTER_CONFIGS = {LoraSection: lora_config, OftSection: oft_config}


def load_trainable(folder: RunFolder) -> Any:
    """The run's model, loaded as its method needs and prepared to train; an init that changes the base keeps
    its initial adapter in the run folder."""
    spec, plan = folder.spec, folder.plan
    return prepare_trainable(
        load_model(
            spec.model, plan, spec.train.method, spec.train.optimizer, spec.attention_group, spec.train.pure_bf16
        ),
        spec,
        plan,
        folder.path,
    )


def prepare_trainable(model: Any, spec: Spec, plan: Plan, run_path: Path | None = None) -> Any:
    """The model as the method trains it: all weights, the last layers, or wrapped with an adapter.

    `run_path` (the run folder) keeps the initial adapter of an init that changes the base weights.
    """
    method = METHODS[spec.train.method]
    adapter = spec.model.adapter
    if adapter is not None and not method.has_adapter:
        model = with_adapter(model, adapter).merge_and_unload()  # full/freeze start from base + adapter
    added = expand_for_spec(model, spec.llama_pro.added_layers)
    if method.trains_chosen_layers:
        freeze_all_but(model, spec.freeze, added, upcast=not spec.train.pure_bf16)
    parts = vision_parts(model)
    if not method.has_adapter:
        if parts is not None:
            apply_vision_section(model, spec, parts)
        return model
    if adapter is not None:
        model = with_adapter(model, adapter, trainable=True)
        config = model.peft_config["default"]
        print(f"training the adapter in {adapter} further (rank {config.r}, alpha {config.lora_alpha})", flush=True)
    else:
        from peft import get_peft_model

        section = spec.adapter_section
        # [llama_pro] takes LoRA only (the methods' records say so): its adapter goes on the copies alone.
        config = lora_config(section, model, added) if added else ADAPTER_CONFIGS[type(section)](section, model)
        if parts is not None:
            config = replace(config, **adapter_scope(model, spec, config.target_modules, parts))
        model = get_peft_model(model, config)
    if spec.lora.init == "loftq":
        loftq_init(model, spec.model, plan)
    if plan.gradient_checkpointing.value:
        model.enable_input_require_grads()  # recomputed blocks need an input that asks for gradients
    # Every process computes the same init; one writes it (the one that saves the result).
    if spec.lora.init in BASE_CHANGING_INITS and run_path is not None and int(os.environ.get("RANK", 0)) == 0:
        save_initial_adapter(model, run_path / INITIAL_ADAPTER)
    return model
