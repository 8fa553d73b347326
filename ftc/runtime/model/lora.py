"""LoRA: which layers the adapter covers, an earlier run's adapter applied, and LoRA+'s optimizer.

How an adapter starts (lora.init) is in `ftc.runtime.model.lora_inits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.methods import METHODS
from ftc.runtime.model.lora_inits import LORA_INITS
from ftc.runtime.model.quantization import QUANTIZED_LINEAR_CLASSES
from ftc.spec.models import LoraSection, Spec

ADAPTER_METHODS = tuple(name for name, method in METHODS.items() if method.has_adapter)  # the stages' imports


def lora_config(lora: LoraSection, model: Any, blocks: Sequence[int] = ()) -> Any:
    """peft's LoraConfig for the spec's [lora] section; target "all" means every linear layer but the head.

    `blocks` ([llama_pro]'s copies): the decoder blocks the adapter goes on; every block when empty.
    """
    from peft import LoraConfig

    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target_module_names(lora.target, model),
        use_dora=lora.use_dora,
        use_rslora=lora.use_rslora,
        init_lora_weights=LORA_INITS[lora.init],
        layers_to_transform=list(blocks) or None,
        task_type="CAUSAL_LM",
    )


def target_module_names(target: str | list[str], model: Any, key: str = "lora.target") -> list[str]:
    """The module names an adapter's target (`key`: lora.target, oft.target) means in this model."""
    linear_names = linear_layer_names(model)
    if target == "all":
        return sorted(linear_names)
    targets = [target] if isinstance(target, str) else list(target)
    if any(name not in linear_names for name in targets):
        targets = _family_target_names(model, targets, linear_names, key)
    return targets


def _family_target_names(model: Any, targets: list[str], linear_names: set[str], key: str) -> list[str]:
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
            f"{key} names no linear layer called {', '.join(map(repr, unknown))} in this model",
            f'choose from: {", ".join(sorted(linear_names))}, or "all"',
        )
    return translated


def linear_layer_names(model: Any) -> set[str]:
    """Short names (e.g. "q_proj") of the model's linear layers (quantized ones included), the output head excluded.

    The head maps to the vocabulary; adapting it costs as much as the rest and rarely helps.
    """
    from torch import nn

    head = model.get_output_embeddings()
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if (isinstance(module, nn.Linear) or type(module).__name__ in QUANTIZED_LINEAR_CLASSES) and module is not head
    }


def with_adapter(model: Any, adapter: str, trainable: bool = False) -> Any:
    """The base with model.adapter applied: an earlier run's LoRA, to train further or to merge."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    except (OSError, ValueError, RuntimeError) as error:  # missing files, another base's shapes
        raise RuntimeUserError(
            f"model.adapter: cannot apply {adapter} to {model.config._name_or_path}: {error}",
            "name the adapter/ folder of a run trained on this same base model",
        ) from None


def attach_lora_plus(trainer: Any, spec: Spec) -> None:
    """LoRA+: the B matrices learn `lora.plus_lr_ratio` times faster than the A matrices (peft's param groups).

    Set as the trainer's optimizer before training starts; the scheduler then scales every group alike.
    """
    lora = spec.lora
    if lora.plus_lr_ratio is None or not METHODS[spec.train.method].has_adapter:
        return
    from peft.optimizers import create_loraplus_optimizer

    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    trainer.optimizer = create_loraplus_optimizer(
        trainer.model,
        optimizer_cls,
        loraplus_lr_ratio=lora.plus_lr_ratio,
        loraplus_weight_decay=trainer.args.weight_decay,
        **kwargs,
    )
