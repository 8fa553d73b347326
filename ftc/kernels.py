"""Speed kernels: one record per `train.kernels` value, and the record of flash-attn, which `model.attention =
'flash'` needs on CUDA. Each holds everything the rest of ftc asks of it.

The spec reads which stages take them, the compiler which backends and model types they run on and what they
change in memory, the runtime the trainer arguments that switch them on, the lock, `ftc doctor` and the docker
target which package and extra install them. Nothing outside this file and `ftc.runtime.trainer_args`
branches on a kernel's name.

Not offered, and why (so that nobody adds a key that cannot be installed beside ftc's stack):
- unsloth: its releases require datasets < 5, below the datasets ftc is tested with, and it patches the
  model classes at import time, under trl's trainers;
- FlashAttention-3 (transformers' "flash_attention_3", Hopper only): its package (flash-attn-3) has no
  release on the package index; it is built from the flash-attention repository's hopper/ folder with nvcc,
  which no extra of ftc can name.

Records only, importing nothing: the spec layer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kernel:
    name: str  # the train.kernels value (or the model.attention value it serves)
    summary: str
    library: str  # the package as pip names it
    module: str  # the package as Python imports it
    extra: str  # the ftc extra (pyproject.toml) that installs it
    backends: tuple[str, ...]  # the device backends (ftc.devices.backends) its kernels run on
    backends_why: str  # why not the others (said after "needs ...")
    licence: str
    install_hint: str  # how to install it where the run trains
    # The plan's loss_head value when its loss kernel computes the loss; a stage lists it among its loss_heads
    # where the stage's trainer lets it (ftc.stages).
    loss_head: str | None = None
    # TrainingArguments' switch and its configuration dict; the configuration's key that turns its loss on.
    trainer_switch: str | None = None
    trainer_config: str | None = None
    loss_option: str | None = None
    model_types: tuple[str, ...] = ()  # the config.json model_types it has kernels for; () for any
    layers_note: str = ""  # what it does in the decoder blocks, and whether the estimate counts it
    requires: tuple[str, ...] = ()  # packages it imports at run time besides torch


def _registry(*kernels: Kernel) -> dict[str, Kernel]:
    return {kernel.name: kernel for kernel in kernels}


# In the order of the spec language's train.kernels values.
KERNELS: dict[str, Kernel] = _registry(
    Kernel(
        "liger",
        "liger-kernel's Triton kernels: RMSNorm, RoPE and SwiGLU in the decoder blocks, and a fused linear "
        "cross-entropy that computes the loss and its gradient chunk by chunk without the full logits",
        library="liger-kernel",
        module="liger_kernel",
        extra="liger",
        backends=("cuda",),
        backends_why="its kernels are Triton's, installed for CUDA GPUs (its Ascend build pins torch and torch_npu "
        "2.9, older than the torch ftc is tested with; the CPU has no Triton backend)",
        licence="BSD-2-Clause",
        install_hint="pip install 'ftc[liger]' where the run trains (CUDA), or remove train.kernels",
        loss_head="liger",
        trainer_switch="use_liger_kernel",
        trainer_config="liger_kernel_config",
        loss_option="fused_linear_cross_entropy",
        # liger-kernel 0.8's model-type table, where ftc knows the family's shapes.
        model_types=("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2", "phi3", "olmo2"),
        layers_note="liger-kernel's RMSNorm, RoPE and SwiGLU keep fewer tensors for the backward than the stock "
        "layers; not counted: activations are the stock layers', an upper bound",
        requires=("triton",),
    ),
)

# model.attention = "flash" on CUDA: transformers' "flash_attention_2" imports this package (on an Ascend NPU
# torch_npu's fused kernel serves it, and nothing more is installed).
FLASH_ATTENTION = Kernel(
    "flash",
    "FlashAttention-2: attention in tiles, no seq × seq scores, variable-length rows for packing",
    library="flash-attn",
    module="flash_attn",
    extra="flash",
    backends=("cuda", "npu"),
    backends_why="kernels are CUDA's (Ampere or newer) or, on an Ascend NPU, torch_npu's fused attention",
    licence="BSD-3-Clause",
    install_hint="pip install flash-attn --no-build-isolation (CUDA only), or set model.attention = 'sdpa'",
)
# The backends whose flash kernel is flash-attn's own package (the others bring theirs).
FLASH_ATTENTION_PACKAGE_BACKENDS = ("cuda",)


def kernels_needing_package(kernels: list[str] | tuple[str, ...], attention: str, backend: str) -> tuple[Kernel, ...]:
    """The kernel packages a run with these train.kernels, this attention kernel and backend imports."""
    needed = tuple(KERNELS[name] for name in kernels)
    if attention == FLASH_ATTENTION.name and backend in FLASH_ATTENTION_PACKAGE_BACKENDS:
        needed += (FLASH_ATTENTION,)
    return needed
