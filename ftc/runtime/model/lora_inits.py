"""How a LoRA adapter starts (lora.init), and what an init that changes the base needs when the adapter is saved.

peft computes most inits; LoftQ is ours. PiSSA and OLoRA move the adapter's starting point out of the
base weights, so the trained adapter is only right for the changed base: it is converted back against
the initial adapter, kept in the run folder, before anyone else uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.spec.models import ModelSection

# lora.init → peft's init_lora_weights. pissa_fast: 16 subspace iterations, seconds for a 7B model.
LORA_INITS = {
    "default": True, "gaussian": "gaussian", "pissa": "pissa", "pissa_fast": "pissa_niter_16", "olora": "olora",
    "loftq": True,  # made as usual, then replaced from the 4-bit weights' error (see `loftq_init`)
}  # fmt: skip
BASE_CHANGING_INITS = ("pissa", "pissa_fast", "olora")
INITIAL_ADAPTER = "adapter-init"  # in the run folder


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
