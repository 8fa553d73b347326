"""Load the tokenizer and the models the spec names, from a local folder or the hub, as the plan holds them.

The method decides the causal LM's dtype: `full` keeps fp32 master weights, the others a base in the
plan's precision, which `qlora` has its quantization backend hold in fewer bits, or finds already quantized
(`ftc.runtime.model.quantization`). What then
trains is `ftc.runtime.model.trainable`'s.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.runtime.model.precision import compute_dtype
from ftc.runtime.model.quantization import loading_options, quantize_loaded
from ftc.runtime.model.rope import rope_scaling_arguments
from ftc.runtime.model.shift_attention import check_model_takes_it, register_shifted_attention
from ftc.spec.models import ModelSection

# The plan's attention kernel → transformers' name for it.
ATTENTION_KERNELS = {"eager": "eager", "sdpa": "sdpa", "flash": "flash_attention_2"}


def require_kernel_packages(plan: Plan) -> None:
    """The packages of the plan's speed kernels and flash attention, before a model is loaded with them: without
    one, transformers would fail deep inside from_pretrained or train()."""
    from ftc.kernels import kernels_needing_package

    for kernel in kernels_needing_package(plan.kernels.value, plan.attention.value, plan.backend.value):
        for module in (kernel.module, *kernel.requires):
            if importlib.util.find_spec(module) is None:
                raise RuntimeUserError(
                    f"the plan runs {kernel.library} ({kernel.summary.split(':')[0]}), but {module} is not "
                    "installed here",
                    kernel.install_hint,
                )


def load_tokenizer(model: ModelSection) -> Any:
    from transformers import AutoTokenizer

    with load_errors_explained(model):
        tokenizer = AutoTokenizer.from_pretrained(
            model.name_or_path, revision=model.revision, trust_remote_code=model.trust_remote_code
        )
    if tokenizer.pad_token is None:
        # Padding positions are masked out of attention and loss, so which token pads does not matter.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    model: ModelSection,
    plan: Plan,
    method: str,
    optimizer: str = "adamw",
    attention_group: int | None = None,
    pure_bf16: bool = False,
) -> Any:
    """`attention_group`: train.shift_attention's tokens per group, which the model trains with in place of the
    plan's kernel (sdpa). `pure_bf16` (train.pure_bf16): full training holds its weights in the plan's bf16."""
    import torch

    from ftc.runtime.model.vision import skipped_by_quantization, vision_parts

    require_kernel_packages(plan)
    parts = vision_parts(model_config(model))
    auto_class = auto_class_of(parts)
    # Full training keeps fp32 master weights and lets autocast compute in bf16/fp16, since the
    # optimizer cannot update fp16 weights under a loss scaler and bf16 weights lose small updates.
    # The other methods keep the frozen base in the plan's precision (what the plan's memory counts), as
    # does an optimizer that keeps its own fp32 copy of what it steps (BAdam's active block), and train.pure_bf16,
    # which trades the small updates for half the memory.
    dtype = compute_dtype(plan)
    fp32_master = METHODS[method].trains_all_weights and not OPTIMIZERS[optimizer].own_fp32_copy and not pure_bf16
    extra: dict[str, Any] = {}
    quantizes = METHODS[method].quantizes
    published = quantizes and _published_quantized(model)
    if quantizes:
        extra |= loading_options(plan, dtype, published, parts and skipped_by_quantization(parts))
        # Quantized layers cannot be moved after loading, so they are loaded (or made) where they will run.
        if plan.backend.value != "cpu":
            extra["device_map"] = {"": f"{plan.backend.value}:{int(os.environ.get('LOCAL_RANK', 0))}"}
    attention = ATTENTION_KERNELS[plan.attention.value]
    if attention_group is not None:
        attention = register_shifted_attention(attention_group)
    with load_errors_explained(model):
        loaded = auto_class.from_pretrained(
            model.name_or_path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            dtype=torch.float32 if fp32_master else dtype,
            attn_implementation=attention,
            **extra,
            **rope_scaling_arguments(model),
        )
    if quantizes:
        quantize_loaded(loaded, plan, dtype, published, parts and skipped_by_quantization(parts))
    if attention_group is not None:
        check_model_takes_it(loaded, model.name_or_path)
    return loaded


def auto_class_of(parts: Any) -> Any:
    """transformers' auto class that loads the model: its image+text class where the family names vision parts."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForCausalLM if parts is None else AutoModelForImageTextToText


def _published_quantized(model: ModelSection) -> bool:
    """The checkpoint's config.json carries a quantization_config: it was quantized before it was published."""
    return getattr(model_config(model), "quantization_config", None) is not None


def model_config(model: ModelSection) -> Any:
    from transformers import AutoConfig

    with load_errors_explained(model):
        return AutoConfig.from_pretrained(
            model.name_or_path, revision=model.revision, trust_remote_code=model.trust_remote_code
        )


def load_score_model(model: ModelSection, plan: Plan, dtype: Any) -> Any:
    """A sequence classifier with one output, the score, in place of the LM head: the rm stage's model (on a
    base, the head starts random) or a trained reward model to score replies with. The caller explains a
    failed load in terms of its own key."""
    from transformers import AutoModelForSequenceClassification

    require_kernel_packages(plan)
    return AutoModelForSequenceClassification.from_pretrained(
        model.name_or_path,
        revision=model.revision,
        trust_remote_code=model.trust_remote_code,
        num_labels=1,
        dtype=dtype,
        attn_implementation=ATTENTION_KERNELS[plan.attention.value],
        **rope_scaling_arguments(model),
    )


@contextmanager
def load_errors_explained(model: ModelSection) -> Iterator[None]:
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
