"""Load the tokenizer and the causal LM the spec names, and say which parameters train.

The method decides both: `full` trains every weight (fp32 master weights), `freeze` the last decoder
layers, `lora` an adapter on a base held in the plan's precision, `qlora` an adapter on a base that
bitsandbytes holds in 4 or 8 bits (the plan's `quantization_bits`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.runtime.stages import METHODS
from ftc.spec.models import FreezeSection, LoraSection, ModelSection, Spec

# The plan's attention kernel → transformers' name for it.
ATTENTION_KERNELS = {"eager": "eager", "sdpa": "sdpa", "flash": "flash_attention_2"}
ADAPTER_METHODS = ("lora", "qlora")
# lora.init → peft's init_lora_weights. pissa_fast: 16 subspace iterations, seconds for a 7B model.
LORA_INITS = {
    "default": True, "gaussian": "gaussian", "pissa": "pissa", "pissa_fast": "pissa_niter_16", "olora": "olora",
    "loftq": True,  # made as usual, then replaced from the 4-bit weights' error (see `loftq_init`)
}  # fmt: skip
# Inits that move the adapter's starting point out of the base weights: the trained adapter is only
# right for the changed base, so it is converted back against the initial adapter when saved.
BASE_CHANGING_INITS = ("pissa", "pissa_fast", "olora")
INITIAL_ADAPTER = "adapter-init"  # in the run folder


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
    # Full training keeps fp32 master weights and lets autocast compute in bf16/fp16, since the
    # optimizer cannot update fp16 weights under a loss scaler and bf16 weights lose small updates.
    # The other methods keep the frozen base in the plan's precision (what the plan's memory counts).
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[plan.precision.value]
    extra: dict[str, Any] = {}
    if method == "qlora":
        extra["quantization_config"] = quantization_config(plan, dtype)
        # bitsandbytes layers cannot be moved after loading, so they are loaded where they will run.
        if plan.backend.value != "cpu":
            extra["device_map"] = {"": f"{plan.backend.value}:{int(os.environ.get('LOCAL_RANK', 0))}"}
    with _load_errors_explained(model):
        return AutoModelForCausalLM.from_pretrained(
            model.name_or_path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            dtype=torch.float32 if method == "full" else dtype,
            attn_implementation=ATTENTION_KERNELS[plan.attention.value],
            **extra,
        )


def quantization_config(plan: Plan, compute_dtype: Any) -> Any:
    """bitsandbytes' config for the plan's bits: NF4 with double quantization (the QLoRA recipe), or LLM.int8."""
    bits = plan.quantization_bits.value
    if bits not in (4, 8):
        raise RuntimeUserError(
            f"train.method = 'qlora' but the plan has quantization_bits = {bits!r}",
            "regenerate the run folder with `ftc launch`; the plan chooses 4 or 8 bits for qlora",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RuntimeUserError(
            "train.method = 'qlora' needs bitsandbytes, which is not installed", "pip install 'ftc[qlora]'"
        ) from None
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def prepare_trainable(model: Any, spec: Spec, plan: Plan, run_path: Path | None = None) -> Any:
    """The model as the method trains it: all weights, the last layers, or wrapped with a LoRA adapter.

    `run_path` (the run folder) keeps the initial adapter of an init that changes the base weights.
    """
    method = spec.train.method
    adapter = spec.model.adapter
    if adapter is not None and method not in ADAPTER_METHODS:
        model = with_adapter(model, adapter).merge_and_unload()  # full/freeze start from base + adapter
    if method == "freeze":
        freeze_all_but(model, spec.freeze)
    if method not in ADAPTER_METHODS:
        return model
    if adapter is not None:
        model = with_adapter(model, adapter, trainable=True)
        config = model.peft_config["default"]
        print(f"training the adapter in {adapter} further (rank {config.r}, alpha {config.lora_alpha})", flush=True)
    else:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(spec.lora, model))
    if spec.lora.init == "loftq":
        loftq_init(model, spec.model, plan)
    if plan.gradient_checkpointing.value:
        model.enable_input_require_grads()  # recomputed blocks need an input that asks for gradients
    # Every process computes the same init; one writes it (the one that saves the result).
    if spec.lora.init in BASE_CHANGING_INITS and run_path is not None and int(os.environ.get("RANK", 0)) == 0:
        save_initial_adapter(model, run_path / INITIAL_ADAPTER)
    return model


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


def loftq_init(model: Any, base: ModelSection, plan: Plan) -> None:
    """LoftQ: each adapter starts as the rank-r part of what 4-bit quantization lost (W − dequantized Q(W)),
    so training starts from (nearly) the unquantized model. W is read from the base's own safetensors.
    Ours rather than peft's `replace_lora_weights_loftq`, which computes on CUDA only."""
    import bitsandbytes as bnb
    import torch

    if plan.quantization_bits.value != 4:
        raise RuntimeUserError(
            f"lora.init = 'loftq' needs a 4-bit base; the plan quantizes to {plan.quantization_bits.value} bits",
            "set quantization.bits = 4",
        )
    weights = _safetensors_weights(base)
    prefix = "base_model.model."
    for name, module in model.named_modules():
        if not isinstance(getattr(module, "base_layer", None), bnb.nn.Linear4bit):
            continue
        quantized = module.base_layer.weight
        original = weights(name.removeprefix(prefix) + ".weight").to(torch.float32)
        residual = original - bnb.functional.dequantize_4bit(quantized.data, quantized.quant_state).to(torch.float32)
        rank, scaling = module.r["default"], module.scaling["default"]
        left, singular, right = torch.linalg.svd(residual, full_matrices=False)
        root = singular[:rank].sqrt()
        a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
        with torch.no_grad():
            a.copy_((root[:, None] * right[:rank]).to(a.dtype))
            b.copy_((left[:, :rank] * root / scaling).to(b.dtype))  # B·A·scaling = the residual's rank-r part


def _safetensors_weights(base: ModelSection) -> Any:
    """name → full-precision tensor, read lazily from the base's (possibly sharded) safetensors files."""
    import json

    from safetensors import safe_open

    folder = Path(base.name_or_path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:  # a hub id: from the local cache only, never fetched here
            folder = Path(snapshot_download(base.name_or_path, revision=base.revision, local_files_only=True))
        except (OSError, ValueError):  # not in the cache, or not a valid id: said below
            folder = Path(base.name_or_path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = {name: folder / file for name, file in json.loads(index.read_text())["weight_map"].items()}
    elif (folder / "model.safetensors").is_file():
        files = None
    else:
        raise RuntimeUserError(
            f"lora.init = 'loftq' reads the base's full-precision weights, and no safetensors were found for "
            f"{base.name_or_path}",
            "point model.name_or_path at a local folder with model.safetensors, or use another lora.init",
        )

    def weight(name: str) -> Any:
        with safe_open(str(files[name] if files else folder / "model.safetensors"), framework="pt") as handle:
            return handle.get_tensor(name)

    return weight


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
        use_dora=lora.use_dora,
        use_rslora=lora.use_rslora,
        init_lora_weights=LORA_INITS[lora.init],
        task_type="CAUSAL_LM",
    )


def save_initial_adapter(model: Any, where: Path) -> None:
    """The adapter before training, which peft needs to turn a PiSSA/OLoRA adapter into one for the original base."""
    init = model.peft_config["default"].init_lora_weights
    model.peft_config["default"].init_lora_weights = True  # reloaded as saved, not initialised again
    model.save_pretrained(str(where))
    model.peft_config["default"].init_lora_weights = init


def resave_for_original_base(trainer: Any, trained: Path, run_path: Path) -> None:
    """PiSSA/OLoRA: save the adapter again, converted by peft into a rank-2r LoRA on the base as published.

    As trained, the adapter belongs to the changed base (the residual), which nobody else has.
    """
    initial = run_path / INITIAL_ADAPTER
    if initial.is_dir() and trainer.is_world_process_zero():
        trainer.model.save_pretrained(str(trained), path_initial_model_for_weight_conversion=str(initial))


def attach_lora_plus(trainer: Any, spec: Spec) -> None:
    """LoRA+: the B matrices learn `lora.plus_lr_ratio` times faster than the A matrices (peft's param groups).

    Set as the trainer's optimizer before training starts; the scheduler then scales every group alike.
    """
    lora = spec.lora
    if lora.plus_lr_ratio is None or spec.train.method not in ADAPTER_METHODS:
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


def freeze_all_but(model: Any, freeze: FreezeSection) -> None:
    """Train only the last `trainable_layers` decoder layers (or the named modules in them) and `extra_modules`.

    The trained weights are held in fp32 whatever the plan's precision: autocast computes with them in
    half precision, and the optimizer's small updates are not lost to bf16 rounding.
    """
    import torch

    layers = decoder_layers(model)
    trained: list[Any] = []
    for layer in list(layers)[len(layers) - min(freeze.trainable_layers, len(layers)) :]:
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
            if param.is_floating_point() and param.dtype != torch.float32:
                param.data = param.data.float()


def decoder_layers(model: Any) -> Any:
    """The ModuleList of decoder layers: the list as long as the config's num_hidden_layers."""
    from torch import nn

    count = model.config.get_text_config().num_hidden_layers
    for module in model.modules():
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
    """Short names (e.g. "q_proj") of the model's linear layers (bitsandbytes' included), the output head excluded.

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
