"""Method `qlora`: the frozen base held in the plan's bits by the plan's quantization backend (ftc.quantizers).

bitsandbytes and EETQ quantize through transformers' config as the base loads; hqq's layers replace the
decoder's linear layers once it is loaded (transformers' own HQQ loader does not run in the 5.x releases
ftc supports); a checkpoint published quantized (GPTQ, AWQ, AQLM, ...) loads through the quantizer its
config.json names. Each needs its package, and most a CUDA device: a missing one is said before loading.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.quantizers import DEFAULT_BACKEND, QUANTIZERS, Quantizer

# The layers each backend puts in place of nn.Linear, by class name (their packages may not be installed):
# what the plan check counts and what lora.target = "all" adapts besides plain linear layers.
QUANTIZED_LINEARS = {
    "bitsandbytes": ("Linear4bit", "Linear8bitLt"),
    "hqq": ("HQQLinear",),
    "eetq": ("EetqLinear",),
    "gptq": ("QuantLinear", "TorchQuantLinear", "TritonV2QuantLinear", "MarlinQuantLinear", "ExllamaV2QuantLinear"),
    "awq": ("WQLinear_GEMM", "WQLinear_GEMV", "WQLinear_Exllama", "WQLinear_ExllamaV2"),
    "aqlm": ("QuantizedLinear",),
}
QUANTIZED_LINEAR_CLASSES = frozenset(name for names in QUANTIZED_LINEARS.values() for name in names)


def plan_quantizer(plan: Plan) -> Quantizer:
    # A plan written before quantization.backend existed quantized with bitsandbytes.
    return QUANTIZERS[plan.quantization_backend.value or DEFAULT_BACKEND]


def loading_options(
    plan: Plan, compute_dtype: Any, published: bool, skip_modules: list[str] | None = None
) -> dict[str, Any]:
    """from_pretrained's keyword arguments for the plan's quantization. `published`: the checkpoint's config.json
    carries its own quantization_config, which transformers follows. `skip_modules`: modules left unquantized
    (an image+text model's vision tower and projector)."""
    quantizer = plan_quantizer(plan)
    bits = plan.quantization_bits.value
    if bits not in quantizer.bits:
        raise RuntimeUserError(
            f"train.method = 'qlora' but the plan has {quantizer.name} at quantization_bits = {bits!r}",
            f"regenerate the run folder with `ftc launch`; {quantizer.name} holds "
            f"{', '.join(map(str, quantizer.bits))} bits",
        )
    require(quantizer, plan)
    if published:
        if quantizer.name == "hqq":
            raise RuntimeUserError(
                "this base is an hqq checkpoint, which the installed transformers cannot load",
                "start from the unquantized model with quantization.backend = 'hqq': ftc quantizes it as it loads",
            )
        return {}
    if quantizer.name == "bitsandbytes":
        from transformers import BitsAndBytesConfig

        if bits == 8:
            return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip_modules)}
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute_dtype,
                llm_int8_skip_modules=skip_modules,
            )
        }
    if quantizer.name == "eetq":
        from transformers import EetqConfig

        return {"quantization_config": EetqConfig(weights="int8")}
    return {}  # hqq: quantize_loaded, below


def quantize_loaded(
    model: Any, plan: Plan, compute_dtype: Any, published: bool, skip_modules: list[str] | None = None
) -> None:
    """hqq: each linear layer but the head (and those under `skip_modules`) becomes an HQQLinear in the plan's bits
    and group, on the model's device."""
    if published or plan_quantizer(plan).name != "hqq":
        return
    from hqq.core.quantize import HQQLinear, hqq_base_quant_config
    from torch import nn

    config = hqq_base_quant_config(nbits=plan.quantization_bits.value, group_size=plan.quantization_group_size.value)
    head = model.get_output_embeddings()
    skipped = set(skip_modules or ())
    for path, parent in list(model.named_modules()):
        if skipped & set(path.split(".")):
            continue
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and child is not head:
                device = str(child.weight.device)
                setattr(parent, name, HQQLinear(child, config, compute_dtype=compute_dtype, device=device))


def require(quantizer: Quantizer, plan: Plan) -> None:
    """The backend's package is installed and the plan's device is one it runs on, or a message saying which not."""
    missing = []
    if plan.backend.value not in quantizer.devices:
        missing.append(f"this run is planned for {plan.backend.value}")
    elif "cpu" not in quantizer.devices:
        import torch

        if not torch.cuda.is_available():
            missing.append("torch sees no CUDA device")
    absent = [package for package in quantizer.packages if importlib.util.find_spec(package) is None]
    if absent:
        missing.append(f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} not installed")
    if missing:
        raise RuntimeUserError(
            f"{quantizer.name} quantization needs {quantizer.needs}; {' and '.join(missing)}",
            f"pip install 'ftc[{quantizer.extra}]'"
            + ("" if "cpu" in quantizer.devices else " on a machine with a CUDA GPU, and plan for it"),
        )


def quantized_layers(model: Any) -> int:
    """Linear layers a quantization backend holds in fewer bits (read by class name)."""
    return sum(type(module).__name__ in QUANTIZED_LINEAR_CLASSES for module in model.modules())
