"""[train], [lora], [oft], [quantization], [freeze], [llama_pro] and [output]: what trains, how, for how long, and
where it goes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ftc.kernels import KERNELS
from ftc.methods import METHODS
from ftc.quantizers import ON_THE_FLY, QUANTIZERS
from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import (
    KernelName,
    LoraInit,
    LossHeadChoice,
    Method,
    Offload,
    Optimizer,
    Precision,
    QuantBackend,
    Scheduler,
    Section,
    Stage,
    Strategy,
    rule_error,
)
from ftc.stages import STAGES


def _kernel_loss_stages() -> str:
    heads = {kernel.loss_head for kernel in KERNELS.values()}
    return ", ".join(name for name, stage in STAGES.items() if heads & set(stage.loss_heads))


def _no_kernel_stages() -> str:
    return ", ".join(name for name, stage in STAGES.items() if not stage.trainer_kernels)


class TrainSection(Section):
    stage: Stage = Field(default="sft", description="Training stage.")
    method: Method = Field(
        default="lora",
        description="Which parameters train: "
        + "; ".join(f"{name} ({m.summary})" for name, m in METHODS.items())
        + ".",
    )
    global_batch_size: int = Field(
        default=16, ge=1, le=1_048_576, description="Examples per optimizer step, across all devices."
    )
    micro_batch_size: int | None = Field(
        default=None, ge=1, le=65_536, description="Examples per device per forward pass; chosen by the plan if unset."
    )
    learning_rate: float = Field(default=1e-4, gt=0, le=1, description="Peak learning rate.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps to run (or set epochs).")
    epochs: float | None = Field(default=None, gt=0, le=10_000, description="Passes over the data (or set max_steps).")
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="Seed for weights init, data order and dropout.")
    precision: Precision = Field(default="auto", description="Compute precision; 'auto' lets the plan choose.")
    lr_scheduler: Scheduler = Field(default="cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(default=0.0, ge=0, le=1, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, ge=0, description="Gradient clipping norm; 0 disables it.")
    logging_steps: int = Field(default=5, ge=1, description="Log the loss every N optimizer steps.")
    save_steps: int = Field(default=500, ge=1, description="Write a checkpoint every N optimizer steps.")
    save_total_limit: int = Field(default=2, ge=0, description="Keep at most N checkpoints; 0 keeps all.")
    gradient_checkpointing: bool | None = Field(
        default=None, description="Recompute activations in the backward pass; unset lets the plan choose."
    )
    strategy: Strategy = Field(
        default="auto", description="Data parallelism and sharding; 'auto' lets the plan choose."
    )
    offload: Offload = Field(default="auto", description="What moves to host memory; 'auto' lets the plan choose.")
    optimizer: Optimizer = Field(
        default="adamw",
        description="What steps the weights: adamw, adamw_8bit, paged_adamw_8bit, galore_adamw, galore_adamw_8bit, "
        "apollo_adamw, badam, adam_mini or muon ([galore], [apollo], [badam], [muon] hold their settings).",
    )
    pure_bf16: bool = Field(
        default=False,
        description="Hold the trained weights in bf16 with no fp32 copy (full and freeze): weights, gradients and "
        "the optimizer's moments are all bf16, about half of full fine-tuning's memory. An update smaller than "
        "bf16's resolution (about 1/256 of the weight) is lost, so small learning rates may stall. Needs "
        "train.precision bf16 (or auto resolving to it) and a strategy of single or ddp: DeepSpeed's and FSDP's "
        "mixed precision keep their own fp32 master copy.",
    )
    neftune_alpha: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="NEFTune: uniform noise of scale alpha / sqrt(seq_len × hidden) on the input embeddings while "
        "training (pt, sft); 5 is the paper's usual value.",
    )
    shift_attention: bool = Field(
        default=False,
        description="LongLoRA's shifted sparse attention (S²-Attn) while training (pt, sft): each token attends "
        "only within its group of train.shift_group_size tokens, and half of the heads group the row shifted by "
        "half a group, so neighbouring groups meet. Evaluation, generation and the saved model use full "
        "attention. Runs through torch's SDPA, for the families whose attention goes through transformers' "
        "attention interface.",
    )
    shift_group_size: int | None = Field(
        default=None,
        ge=2,
        le=1_048_576,
        description="Tokens per group of train.shift_attention: even, and a divisor of data.cutoff_len smaller "
        "than it. Unset: a quarter of data.cutoff_len, the LongLoRA paper's ratio.",
    )
    loss_head: LossHeadChoice = Field(
        default="auto",
        description="'fused': trl's chunked LM head, no full logits; 'model': the model's own loss over the full "
        "logits (faster on the CPU, more memory); 'liger': liger-kernel's fused linear cross-entropy, no full "
        "logits (pt, with train.kernels = ['liger']); 'auto' lets the plan choose.",
    )
    kernels: list[KernelName] = Field(
        default=[],
        description="Speed kernels patched into the model (CUDA only; the plan refuses them elsewhere): "
        + "; ".join(f"{name} ({kernel.summary}; pip install 'ftc[{kernel.extra}]')" for name, kernel in KERNELS.items())
        + f". A kernel's loss replaces the logits only in {_kernel_loss_stages()}, whose trainer lets it; the other "
        f"stages compute their loss themselves and take only the layer kernels ({_no_kernel_stages()}: none). "
        "unsloth is not offered: it requires datasets < 5.",
    )

    @model_validator(mode="after")
    def _kernels_once(self) -> TrainSection:
        repeated = sorted({name for name in self.kernels if self.kernels.count(name) > 1})
        if repeated:
            raise rule_error(
                f"train.kernels names {', '.join(map(repr, repeated))} more than once",
                "list each kernel once",
                at="train.kernels",
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _one_length(self) -> TrainSection:
        if self.max_steps is None and self.epochs is None:
            raise rule_error("say how long to train", "set train.max_steps = N or train.epochs = N", code=Code.MISSING)
        if self.max_steps is not None and self.epochs is not None:
            raise rule_error(
                "max_steps and epochs are both set", "keep one of train.max_steps and train.epochs", code=Code.CONFLICT
            )
        return self


class LoraSection(Section):
    rank: int = Field(default=8, ge=1, le=4096, description="Rank of the low-rank update.")
    alpha: float = Field(default=16, gt=0, description="Scale numerator: the update is scaled by alpha / rank.")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    target: str | list[str] = Field(
        default="all", description="'all' for every linear layer but the head, or a list of module names."
    )
    use_dora: bool = Field(
        default=False, description="DoRA: a trained magnitude per output row on top of the low-rank direction."
    )
    use_rslora: bool = Field(default=False, description="rsLoRA: scale the update by alpha / sqrt(rank), not / rank.")
    plus_lr_ratio: float | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="LoRA+: learning rate of the B matrices as a multiple of train.learning_rate (e.g. 16).",
    )
    init: LoraInit = Field(
        default="default",
        description="Adapter initialisation: default (B = 0), gaussian, pissa (principal singular vectors), "
        "pissa_fast (PiSSA by 16 fast-SVD iterations), olora (QR), loftq (qlora 4-bit: the adapter starts as "
        "the quantization error's low-rank part).",
    )


# peft's OFT block size when neither oft.block_size nor oft.rank is set.
OFT_BLOCK_SIZE = 32


class OftSection(Section):
    block_size: int | None = Field(
        default=None,
        ge=2,
        le=8192,
        description=f"Size of the rotated blocks; it must divide each adapted layer's input width. Unset: "
        f"{OFT_BLOCK_SIZE}, unless oft.rank is set. Each layer trains (blocks × block_size × (block_size - 1) / 2) "
        "values.",
    )
    rank: int | None = Field(
        default=None,
        ge=1,
        le=65_536,
        description="Blocks per adapted layer (peft's r), instead of oft.block_size: the block size is then each "
        "layer's input width / rank, which rank must divide.",
    )
    target: str | list[str] = Field(
        default="all", description="'all' for every linear layer but the head, or a list of module names."
    )
    block_share: bool = Field(
        default=False,
        description="One rotation shared by every block of a layer: block_size × (block_size - 1) / 2 "
        "values per layer.",
    )
    coft: bool = Field(
        default=False, description="Constrained OFT: each step projects the rotation back within oft.eps of identity."
    )
    eps: float = Field(
        default=6e-5, gt=0, le=1, description="COFT's radius: how far from identity a rotation may move (oft.coft)."
    )
    cayley_neumann: bool = Field(
        default=True,
        description="Build each rotation by a truncated Neumann series of the Cayley transform (fast, nearly "
        "orthogonal); false solves the exact transform (a matrix inverse per block).",
    )
    neumann_terms: int = Field(
        default=5,
        ge=2,
        le=64,
        description="Terms of that series: more are closer to orthogonal, and keep more block matrices for the "
        "backward.",
    )

    @model_validator(mode="after")
    def _one_size(self) -> OftSection:
        if self.block_size is not None and self.rank is not None:
            raise rule_error(
                "oft.block_size and oft.rank both size the blocks (rank × block_size = a layer's input width)",
                "keep one of oft.block_size and oft.rank",
                at="oft.rank",
                code=Code.CONFLICT,
            )
        if self.eps != OftSection.model_fields["eps"].default and not self.coft:
            raise rule_error(
                "oft.eps bounds constrained OFT's rotations, but oft.coft is off",
                "set oft.coft = true, or remove oft.eps",
                at="oft.eps",
                code=Code.CONFLICT,
            )
        if self.neumann_terms != OftSection.model_fields["neumann_terms"].default and not self.cayley_neumann:
            raise rule_error(
                "oft.neumann_terms sizes the Neumann series, but oft.cayley_neumann is off",
                "set oft.cayley_neumann = true, or remove oft.neumann_terms",
                at="oft.neumann_terms",
                code=Code.CONFLICT,
            )
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(block_size, rank) as peft's OFTConfig takes them: one of the two is 0, the other sizes the blocks."""
        if self.rank is not None:
            return 0, self.rank
        return (self.block_size or OFT_BLOCK_SIZE), 0


class QuantizationSection(Section):
    backend: QuantBackend = Field(
        default="bitsandbytes",
        description="The library that quantizes the base as it loads, for qlora: 'bitsandbytes' (NF4 or LLM.int8; "
        "CUDA or CPU), 'hqq' (half-quadratic, no calibration; CUDA, CPU or NPU) or 'eetq' (int8; CUDA only). "
        "A checkpoint published quantized (GPTQ, AWQ, AQLM, ...) is held as its config.json says instead.",
    )
    bits: Literal[2, 3, 4, 8] | None = Field(
        default=None,
        description="Weight bits for qlora: bitsandbytes 4 or 8, hqq 2, 3, 4 or 8, eetq 8; unset lets the plan "
        "choose (4, or eetq's 8).",
    )
    group_size: int | None = Field(
        default=None,
        ge=8,
        le=4096,
        multiple_of=8,
        description="hqq: weights sharing one scale and zero (64 unless set); smaller groups are more precise "
        "and hold more scales.",
    )

    @model_validator(mode="after")
    def _backend_takes(self) -> QuantizationSection:
        quantizer = QUANTIZERS[self.backend]
        if self.bits is not None and self.bits not in quantizer.bits:
            raise rule_error(
                f"quantization.backend = {self.backend!r} holds {_listed(quantizer.bits)} bits, not {self.bits}",
                f"set quantization.bits to {_listed(quantizer.bits)}, or choose another backend",
                at="quantization.bits",
                code=Code.CONFLICT,
            )
        if self.group_size is not None and quantizer.default_group_size is None:
            grouping = [name for name in ON_THE_FLY if QUANTIZERS[name].default_group_size]
            raise rule_error(
                f"quantization.group_size is set, but {self.backend} has no group size to choose",
                f"remove quantization.group_size, or use quantization.backend = {grouping[0]!r}",
                at="quantization.group_size",
                code=Code.CONFLICT,
            )
        return self


def _listed(values: tuple[int, ...]) -> str:
    return " or ".join(map(str, values))


# freeze.trainable_layers when unset: under [llama_pro] the added blocks train instead, so unset is not 2 there.
DEFAULT_TRAINABLE_LAYERS = 2


class FreezeSection(Section):
    trainable_layers: int | None = Field(
        default=None,
        ge=0,
        le=4096,
        description=f"How many decoder layers train, counted from the last one; {DEFAULT_TRAINABLE_LAYERS} when unset. "
        "Under [llama_pro] the added blocks train instead, and this stays unset.",
    )
    trainable_modules: Literal["all"] | list[str] = Field(
        default="all",
        description="Within those layers, the modules that train ('all', or names such as 'mlp', 'self_attn').",
    )
    extra_modules: list[str] = Field(
        default=[],
        description="Modules outside the decoder layers that train too, e.g. 'embed_tokens', 'norm', 'lm_head'.",
    )

    @property
    def top_layers(self) -> int:
        """How many of the last decoder layers train (without [llama_pro])."""
        return DEFAULT_TRAINABLE_LAYERS if self.trainable_layers is None else self.trainable_layers

    @model_validator(mode="after")
    def _something_trains(self) -> FreezeSection:
        if self.trainable_layers == 0 and not self.extra_modules:
            raise rule_error(
                "nothing would train",
                "set freeze.trainable_layers >= 1, or name freeze.extra_modules to train",
                code=Code.CONFLICT,
            )
        return self


class LlamaProSection(Section):
    """LLaMA Pro block expansion: identity copies of decoder blocks inserted into the base; only they train."""

    added_layers: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Decoder blocks to add: the base's blocks are split into this many equal groups (it must divide "
        "their count) and a copy of each group's last block follows it, its attention and MLP output projections "
        "zeroed so the model starts as the base. Only the copies train: whole under method freeze ([freeze]'s "
        "trainable_modules and extra_modules still apply), through a LoRA adapter on them under lora. The run "
        "saves the expanded model (freeze) or the adapter, which ftc export and ftc chat apply to the base "
        "expanded again (lora).",
    )


class OutputSection(Section):
    dir: str = Field(default="runs/default", min_length=1, description="Run folder (relative to the spec).")
