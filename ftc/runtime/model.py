"""Load the tokenizer and the causal LM the spec names, and say which parameters train."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.runtime.errors import RuntimeUserError
from ftc.runtime.stages import METHODS
from ftc.spec.models import LoraSection, ModelSection

# The plan's attention kernel → transformers' name for it.
ATTENTION_KERNELS = {"eager": "eager", "sdpa": "sdpa", "flash": "flash_attention_2"}


def check_method(method: str) -> None:
    if method not in METHODS:
        raise RuntimeUserError(
            f"train.method = {method!r} is not supported yet by the runtime", f"use one of: {', '.join(METHODS)}"
        )


def load_tokenizer(model: ModelSection) -> Any:
    from transformers import AutoTokenizer

    with _load_errors_explained(model):
        tokenizer = AutoTokenizer.from_pretrained(
            model.name_or_path, revision=model.revision, trust_remote_code=model.trust_remote_code
        )
    if tokenizer.pad_token is None:
        # Padding positions are masked out of attention and loss, so which token pads does not matter.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model: ModelSection, plan: Plan, method: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    check_method(method)
    # LoRA keeps the frozen base in the plan's precision (peft keeps the adapter in fp32); full
    # training keeps fp32 master weights and lets autocast compute in bf16/fp16, since the optimizer
    # cannot update fp16 weights under a loss scaler and bf16 weights lose small updates.
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[plan.precision.value]
    with _load_errors_explained(model):
        return AutoModelForCausalLM.from_pretrained(
            model.name_or_path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            dtype=dtype if method == "lora" else torch.float32,
            attn_implementation=ATTENTION_KERNELS[plan.attention.value],
        )


def lora_config(lora: LoraSection, model: Any) -> Any:
    """peft's LoraConfig for the spec's [lora] section; target "all" means every linear layer but the head."""
    from peft import LoraConfig

    linear_names = linear_layer_names(model)
    if lora.target == "all":
        targets = sorted(linear_names)
    else:
        targets = [lora.target] if isinstance(lora.target, str) else list(lora.target)
        if any(name not in linear_names for name in targets):
            targets = _family_target_names(model, targets, linear_names)
    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def _family_target_names(model: Any, targets: list[str], linear_names: set[str]) -> list[str]:
    """Names as the plan reads them (q_proj, gate_proj, ...) → this family's own (qkv_proj, gate_up_proj, ...).

    The compiler's table of families decides, so the plan's LoRA estimate and the adapter trained agree.
    """
    from ftc.compiler.architectures import architecture_from_config
    from ftc.compiler.params import lora_target_modules
    from ftc.errors import FtcError

    try:
        translated = list(lora_target_modules(architecture_from_config(model.config.to_dict()), targets))
    except FtcError:
        translated = []
    if not translated or any(name not in linear_names for name in translated):
        unknown = [name for name in targets if name not in linear_names]
        raise RuntimeUserError(
            f"lora.target names no linear layer called {', '.join(map(repr, unknown))} in this model",
            f'choose from: {", ".join(sorted(linear_names))}, or "all"',
        )
    return translated


def linear_layer_names(model: Any) -> set[str]:
    """Short names (e.g. "q_proj") of the model's nn.Linear layers, the output head excluded.

    The head maps to the vocabulary; adapting it costs as much as the rest and rarely helps.
    """
    from torch import nn

    head = model.get_output_embeddings()
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not head
    }


@contextmanager
def _load_errors_explained(model: ModelSection) -> Iterator[None]:
    """Turn a missing folder or a failed download into a RuntimeUserError naming the model."""
    if Path(model.name_or_path).is_absolute() and not Path(model.name_or_path).is_dir():
        raise RuntimeUserError(
            f"model folder {model.name_or_path} not found", "model.name_or_path must be a model folder or a hub id"
        )
    try:
        yield
    except OSError as error:
        raise RuntimeUserError(
            f"could not load {model.name_or_path!r}: {error}",
            "model.name_or_path must be a local model folder or a hub id reachable from here",
        ) from None
