"""train.optimizer against the plan: what its memory depends on, whether it steps layer-wise, and what it
cannot do on this backend, with this model or this many processes."""

from __future__ import annotations

from ftc.compiler.memory.states import OptimizerSettings
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import Linear, adapted_layers
from ftc.errors import FtcError
from ftc.optimizers import OPTIMIZERS
from ftc.spec.models import Spec


def optimizer_settings(spec: Spec) -> OptimizerSettings:
    """What the optimizer's memory depends on, from its section of the spec."""
    section = OPTIMIZERS[spec.train.optimizer].section
    if section in ("galore", "apollo"):
        projected = getattr(spec, section)
        return OptimizerSettings(
            rank=projected.rank, targets=target_names(projected.target), layerwise=projected.layerwise
        )
    return OptimizerSettings()


def layerwise_section(spec: Spec) -> str | None:
    """The section that asks for layer-wise stepping, if one does."""
    section = OPTIMIZERS[spec.train.optimizer].section
    return section if section in ("galore", "apollo") and getattr(spec, section).layerwise else None


def check_optimizer(spec: Spec, arch: Architecture | None, world: int, backend: str) -> None:
    """What train.optimizer cannot do on this backend, with this model or this many processes (the spec checked
    the rest)."""
    name = spec.train.optimizer
    optimizer = OPTIMIZERS[name]
    if backend not in optimizer.backends:
        raise FtcError(
            f"train.optimizer = {name!r} runs on {', '.join(optimizer.backends)} only: it {optimizer.backends_why}",
            "plan for a CUDA device, or use " + ("galore_adamw" if optimizer.section == "galore" else "adamw"),
        )
    if world > 1 and optimizer.strategies == ("single",):
        raise FtcError(
            f"train.optimizer = {name!r} runs on one device: it {optimizer.strategies_why}",
            "plan for one device, or use adamw with ZeRO",
        )
    layerwise = layerwise_section(spec)
    if layerwise and world > 1:
        raise FtcError(
            f"{layerwise}.layerwise steps each weight inside the backward, where DDP has not yet averaged its "
            f"gradient: it runs on one device ({world} planned)",
            f"plan for one device, or remove {layerwise}.layerwise",
        )
    if arch is None:
        return
    if optimizer.section in ("galore", "apollo"):
        projected = getattr(spec, optimizer.section)
        key = f"{optimizer.section}.target"
        narrowest = min(adapted_layers(arch, target_names(projected.target), key), key=_shorter_side)
        if projected.rank > _shorter_side(narrowest):
            raise FtcError(
                f"{optimizer.section}.rank = {projected.rank} is larger than {narrowest.name}'s shorter side "
                f"({narrowest.in_features} × {narrowest.out_features}): a projection cannot have more dimensions "
                "than the gradient it projects",
                f"set {optimizer.section}.rank to {_shorter_side(narrowest)} or less, or leave {narrowest.name} out of "
                f"{key}",
            )
    if optimizer.states == "per_block_second_moment" and arch.q_width != arch.hidden_size:
        raise FtcError(
            f"train.optimizer = 'adam_mini' splits the query and key matrices into heads of hidden_size / heads "
            f"values, but {spec.model.name_or_path!r} has {arch.num_attention_heads} heads of {arch.head_dim} "
            f"(not {arch.hidden_size} wide together)",
            "use adamw or muon for this model",
        )


def _shorter_side(linear: Linear) -> int:
    return min(linear.in_features, linear.out_features)


def target_names(names: str | list[str]) -> str | tuple[str, ...]:
    """'all', or a list of names as the hashable tuple the estimate's inputs hold."""
    return names if isinstance(names, str) else tuple(names)
