"""The optimizer a run steps with, through the library that implements it (ftc.optimizers holds the records).

Two ways in. transformers builds the optimizers it knows by name (AdamW, bitsandbytes' 8-bit AdamW, GaLore,
APOLLO) from TrainingArguments: `trainer_arguments` gives it the name and the settings. For the others ftc
builds the library's optimizer with the grouping its authors prescribe and hands it to the trainer before
training starts (`attach_optimizer`), as LoRA+ does: BAdam's block optimizer around torch's AdamW,
Adam-mini's named partitions, and torch's Muon for the hidden matrices beside AdamW for the rest.
"""

from __future__ import annotations

from typing import Any

from ftc.errors import RuntimeUserError
from ftc.optimizers import OPTIMIZERS
from ftc.spec.models import Spec

# The linear layers inside the decoder blocks, as transformers' optim_target_modules matches a regular
# expression against module paths: "all" leaves out the embeddings and the head, as LoRA's "all" does.
ALL_DECODER_LINEARS = r".*\.layers\.\d+\..+"


def trainer_arguments(spec: Spec) -> dict[str, Any]:
    """TrainingArguments' optim, optim_target_modules and optim_args for an optimizer transformers builds."""
    record = OPTIMIZERS[spec.train.optimizer]
    if record.trainer_optim is None:
        return {}
    if record.section is None:
        return {"optim": record.trainer_optim}
    projected = getattr(spec, record.section)
    settings = {"rank": projected.rank, "update_proj_gap": projected.update_proj_gap, "scale": projected.scale}
    if record.section == "galore":
        settings["proj_type"] = projected.proj_type
    else:
        settings |= {"proj": projected.proj, "scale_type": projected.scale_type}
    target = projected.target
    return {
        "optim": record.trainer_optim + ("_layerwise" if projected.layerwise else ""),
        "optim_target_modules": ALL_DECODER_LINEARS if target == "all" else list(target),
        "optim_args": ",".join(f"{key}={value}" for key, value in settings.items()),
    }


def attach_optimizer(trainer: Any, spec: Spec) -> None:
    """Give the trainer the optimizer ftc builds, where the record says ftc builds it."""
    name = spec.train.optimizer
    if not OPTIMIZERS[name].builder:
        return
    build = {"badam": _badam, "adam_mini": _adam_mini, "muon": _muon}[name]
    trainer.optimizer = build(trainer.model, trainer.args, spec)


def _adamw_settings(args: Any) -> dict[str, Any]:
    return {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon}


def _badam(model: Any, args: Any, spec: Spec) -> Any:
    badam = _library("badam", "badam")
    import torch

    named = list(model.named_parameters())
    settings = spec.badam
    if settings.start_block is not None and settings.start_block >= model.config.num_hidden_layers:
        raise RuntimeUserError(
            f"badam.start_block = {settings.start_block}, but the model has {model.config.num_hidden_layers} blocks",
            f"set it below {model.config.num_hidden_layers}, or remove it",
        )
    base = torch.optim.AdamW(
        [{"params": [p for _, p in named], "weight_decay": args.weight_decay}], **_adamw_settings(args)
    )
    # BAdam turns requires_grad on and off block by block; checkpointed blocks need inputs that carry a grad.
    if getattr(args, "gradient_checkpointing", False):
        model.enable_input_require_grads()
    return badam.BlockOptimizer(
        base_optimizer=base,
        named_parameters_list=named,
        switch_block_every=settings.switch_every,
        start_block=settings.start_block,
        switch_mode=settings.switch_mode,
        verbose=0,
    )


def _adam_mini(model: Any, args: Any, spec: Spec) -> Any:
    adam_mini = _library("adam_mini", "adam-mini")
    config = model.config.get_text_config()
    return adam_mini.Adam_mini(
        named_parameters=list(model.named_parameters()),
        weight_decay=args.weight_decay,
        dim=config.hidden_size,
        n_heads=config.num_attention_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        verbose=False,
        **_adamw_settings(args),
    )


def _muon(model: Any, args: Any, spec: Spec) -> Any:
    """torch's Muon for the 2-D matrices inside the blocks, AdamW for the embeddings, head, norms and biases:
    the split Muon's authors prescribe (an embedding row or a logit is not a hidden transformation)."""
    import torch

    outside = {
        id(p)
        for module in (model.get_input_embeddings(), model.get_output_embeddings())
        if module
        for p in module.parameters()
    }
    trained = [p for p in model.parameters() if p.requires_grad]
    hidden = [p for p in trained if p.ndim == 2 and id(p) not in outside]
    rest = [p for p in trained if p.ndim != 2 or id(p) in outside]
    settings = spec.muon
    parts = {
        "muon": torch.optim.Muon(
            hidden,
            lr=args.learning_rate,
            weight_decay=args.weight_decay,
            momentum=settings.momentum,
            nesterov=settings.nesterov,
            ns_steps=settings.ns_steps,
            adjust_lr_fn=settings.adjust_lr,
        ),
        "adamw": torch.optim.AdamW(rest, weight_decay=args.weight_decay, **_adamw_settings(args)),
    }
    return _joined(parts)


def _joined(parts: dict[str, Any]) -> Any:
    """Optimizers over disjoint parameters, stepped, saved and scheduled as one."""
    import torch

    class Joined(torch.optim.Optimizer):
        # The parts' own group dicts: the scheduler's learning rates reach them as they are set here.
        def __init__(self) -> None:
            self.parts = parts
            super().__init__([group for part in parts.values() for group in part.param_groups], {})

        @torch.no_grad()
        def step(self, closure: Any = None) -> Any:
            loss = closure() if closure is not None else None
            for part in self.parts.values():
                part.step()
            return loss

        def state_dict(self) -> dict[str, Any]:
            return {"parts": {name: part.state_dict() for name, part in self.parts.items()}}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            for name, part in self.parts.items():
                part.load_state_dict(state_dict["parts"][name])

    return Joined()


def _library(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeUserError(
            f"train.optimizer needs the package {package}, which is not installed",
            "install ftc[optimizers] (pip install -c constraints.txt 'ftc[optimizers]')",
        ) from None
