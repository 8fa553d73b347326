"""After the libraries prepared the model, check that they did what the plan decided, before the first step.

The plan promises a sharding, a quantization and the dtype of what trains, and its memory estimate
rests on them. The libraries decide for themselves: a new accelerate once stopped sharding decoder
layers one by one (it shards the checkpoint wrapper around each instead, which is the same unit, but
a test looking at the layers saw nothing), and a run would have trained on, sharded otherwise than
planned, with the estimate wrong and no word said. So each promise is checked on the prepared model;
a mismatch stops the run naming the plan's decision, what the libraries did, and their versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ftc.compiler.memory.states import holding
from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.methods import METHODS
from ftc.runtime.model.quantization import plan_quantizer, quantized_layers

# The libraries whose versions decide how a model is prepared; named in every mismatch.
PREPARING_LIBRARIES = ("torch", "transformers", "accelerate", "peft", "deepspeed", "bitsandbytes")
ZERO_STAGES = {"zero1": 1, "zero2": 2, "zero3": 3}
DTYPE_NAMES = {4: "fp32", 2: "half precision (bf16/fp16)"}


@dataclass(frozen=True)
class Mismatch:
    decision: str  # what the plan said, e.g. "fsdp: every LlamaDecoderLayer its own FSDP unit"
    found: str  # what the libraries did
    libraries: tuple[str, ...]  # the ones that did it


def check_prepared(
    trainer: Any,
    plan: Plan,
    method: str,
    stage: str,
    layer_classes: list[str] | None = None,
    optimizer: str = "adamw",
    pure_bf16: bool = False,
) -> None:
    """Raise on the first promise of the plan the prepared model breaks; nothing otherwise."""
    refuse(strategy_mismatch(trainer, plan, layer_classes))
    check_model(trainer.model, plan, method, stage, optimizer, pure_bf16)


def check_model(
    model: Any, plan: Plan, method: str, stage: str, optimizer: str = "adamw", pure_bf16: bool = False
) -> None:
    """What holds without a trainer (ppo's own loop): the quantized layers and the dtype of what trains."""
    refuse(
        quantization_mismatch(model, plan) or trainable_dtype_mismatch(model, plan, method, stage, optimizer, pure_bf16)
    )


def refuse(mismatch: Mismatch | None) -> None:
    if mismatch is not None:
        raise RuntimeUserError(
            f"the libraries did not prepare the model as planned: the plan chose {mismatch.decision}, but "
            f"{mismatch.found} ({versions(mismatch.libraries)})",
            "install the tested versions (pip install -c constraints.txt ...; `ftc doctor` lists what differs), "
            "or report this with the run folder's plan.json",
        )


def versions(names: tuple[str, ...]) -> str:
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def strategy_mismatch(trainer: Any, plan: Plan, layer_classes: list[str] | None) -> Mismatch | None:
    strategy = plan.strategy.value
    if strategy == "fsdp":
        return fsdp_mismatch(trainer.model, layer_classes or list(getattr(trainer.model, "_no_split_modules", ())))
    if strategy in ZERO_STAGES:
        return zero_mismatch(getattr(trainer, "deepspeed", None), ZERO_STAGES[strategy], plan.offload.value)
    if strategy == "ddp" and plan.world_size.value > 1:
        wrapped = type(trainer.model_wrapped).__name__
        if wrapped != "DistributedDataParallel":
            return Mismatch(
                "ddp: a replica per process, gradients all-reduced", f"the model is a {wrapped}", ("accelerate",)
            )
    return None


def fsdp_mismatch(model: Any, layer_classes: list[str]) -> Mismatch | None:
    """Every decoder layer is an FSDP unit: itself, or the activation-checkpoint wrapper around it."""
    from torch.distributed.fsdp import FSDPModule

    wrappers = {
        id(module._checkpoint_wrapped_module): module
        for module in model.modules()
        if hasattr(module, "_checkpoint_wrapped_module")
    }
    # fully_shard gives a sharded module a subclass of its own (FSDPLlamaDecoderLayer): look along the MRO.
    layers = [
        module for module in model.modules() if any(cls.__name__ in layer_classes for cls in type(module).__mro__)
    ]
    decision = f"fsdp: every {' / '.join(layer_classes) or 'decoder layer'} its own FSDP unit"
    libraries = ("torch", "transformers", "accelerate")
    if not isinstance(model, FSDPModule):
        return Mismatch(decision, f"the model is not sharded (a {type(model).__name__})", libraries)
    if not layers:
        return Mismatch(decision, "the model has no module of that class", libraries)
    sharded = sum(isinstance(layer, FSDPModule) or isinstance(wrappers.get(id(layer)), FSDPModule) for layer in layers)
    if sharded != len(layers):
        return Mismatch(decision, f"{sharded} of {len(layers)} layers are FSDP units", libraries)
    return None


def zero_mismatch(engine: Any, stage: int, offload: str) -> Mismatch | None:
    decision = f"DeepSpeed ZeRO stage {stage}" + (f" with {offload} offloaded" if offload != "none" else "")
    libraries = ("deepspeed", "accelerate", "transformers")
    if engine is None:
        return Mismatch(decision, "the trainer holds no DeepSpeed engine", libraries)
    found = engine.zero_optimization_stage()
    if found != stage:
        return Mismatch(decision, f"DeepSpeed reports ZeRO stage {found}", libraries)
    offloads_optimizer = bool(engine.zero_offload_optimizer())
    if offloads_optimizer != (offload != "none"):
        state = "offloads" if offloads_optimizer else "does not offload"
        return Mismatch(decision, f"DeepSpeed {state} the optimizer states", libraries)
    return None


def quantization_mismatch(model: Any, plan: Plan) -> Mismatch | None:
    bits = plan.quantization_bits.value
    quantized = quantized_layers(model)
    libraries = ("transformers", *plan_quantizer(plan).packages)
    if bits is None or bits >= 16:
        if quantized:
            return Mismatch("no quantization", f"{quantized} linear layers are quantized", libraries)
        return None
    if quantized == 0:
        return Mismatch(f"{bits}-bit quantized base weights", "no layer is quantized", libraries)
    return None


def trainable_dtype_mismatch(
    model: Any, plan: Plan, method: str, stage: str, optimizer: str = "adamw", pure_bf16: bool = False
) -> Mismatch | None:
    """What trains is held in the dtype the estimate counted (its bytes per trainable value)."""
    held = holding(
        method,
        plan.precision.value,
        plan.strategy.value,
        stage,
        optimizer=optimizer,
        quantizer=plan.quantization_backend.value,
        pure_half=pure_bf16,
    )
    expected = held.adapter if METHODS[method].has_adapter else held.trainable
    different = sorted(
        {
            f"{name} ({str(param.dtype).removeprefix('torch.')})"
            for name, param in model.named_parameters()
            if param.requires_grad and param.is_floating_point() and param.element_size() != expected
        }
    )
    if not different:
        return None
    shown = ", ".join(different[:3]) + (f" and {len(different) - 3} more" if len(different) > 3 else "")
    return Mismatch(
        f"trainable parameters in {DTYPE_NAMES.get(expected, f'{expected}-byte values')}",
        f"{len(different)} trainable parameters are held otherwise: {shown}",
        ("torch", "transformers", "peft", "accelerate", "trl"),
    )


def plan_check_callback(
    trainer: Any, plan: Plan, method: str, stage: str, optimizer: str = "adamw", pure_bf16: bool = False
) -> Any:
    """A trainer callback that runs the check once the trainer prepared the model (on_train_begin follows it)."""
    from transformers import TrainerCallback

    class PreparedAsPlanned(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            layer_classes = (args.fsdp_config or {}).get("transformer_layer_cls_to_wrap")
            check_prepared(trainer, plan, method, stage, layer_classes, optimizer, pure_bf16)
            return control

    return PreparedAsPlanned()
