"""Method `freeze`: only the last decoder layers (or named modules in them) and a few named others train.

The compiler counts the same modules by the same names (`ftc.compiler.module_tree`), so the plan's
estimate and what trains agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.spec.models import FreezeSection


def freeze_all_but(model: Any, freeze: FreezeSection, blocks: Sequence[int] = (), upcast: bool = True) -> None:
    """Train only the last `trainable_layers` decoder layers (or the named modules in them) and `extra_modules`.

    `blocks` ([llama_pro]'s copies) are the decoder layers that train in place of the last ones.

    The trained weights are held in fp32 whatever the plan's precision: autocast computes with them in
    half precision, and the optimizer's small updates are not lost to bf16 rounding; `upcast` False
    (train.pure_bf16) leaves them in the dtype they were loaded in.
    """
    import torch

    layers = decoder_layers(model)
    trained: list[Any] = []
    chosen = [layers[index] for index in blocks] or list(layers)[len(layers) - min(freeze.top_layers, len(layers)) :]
    for layer in chosen:
        if freeze.trainable_modules == "all":
            trained.append(layer)
        else:
            trained += _named_modules(layer, freeze.trainable_modules, "freeze.trainable_modules")
    inside_layers = {id(module) for module in layers.modules()}
    outside = [(name, module) for name, module in model.named_modules() if id(module) not in inside_layers]
    trained += _named_modules_in(outside, freeze.extra_modules, "freeze.extra_modules")

    model.requires_grad_(False)
    for module in trained:
        for param in module.parameters():
            param.requires_grad_(True)
            if upcast and param.is_floating_point() and param.dtype != torch.float32:
                param.data = param.data.float()


def decoder_layers(model: Any) -> Any:
    """The ModuleList of decoder layers: the list as long as the config's num_hidden_layers."""
    from torch import nn

    count = model.config.get_text_config().num_hidden_layers
    # An image+text model's vision tower holds a list of blocks too: the language model's are looked for in it.
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    for module in (decoder or model).modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise RuntimeUserError(
        f"method 'freeze' found no list of {count} decoder layers in this model", "use method = 'full' or 'lora'"
    )


def _named_modules(root: Any, names: list[str], key: str) -> list[Any]:
    return _named_modules_in(list(root.named_modules()), names, key)


def _named_modules_in(modules: list[tuple[str, Any]], names: list[str], key: str) -> list[Any]:
    """Modules whose own name (the last part of the dotted path) is one of `names`; every name must match one."""
    by_name: dict[str, list[Any]] = {}
    for path, module in modules:
        if path:
            by_name.setdefault(path.rsplit(".", 1)[-1], []).append(module)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        known = sorted(name for name in by_name if not name.isdigit())
        raise RuntimeUserError(
            f"{key} names no module called {', '.join(map(repr, unknown))} in this model",
            f"choose from: {', '.join(known)}",
        )
    return [module for name in names for module in by_name[name]]
