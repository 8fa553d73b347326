"""Which kernels compute the run: attention's, the loss head, and the speed kernels train.kernels lists."""

from __future__ import annotations

from ftc.compiler.hardware import Hardware
from ftc.compiler.memory.logits import MODEL_LOSS_BYTES_PER_LOGIT
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.plan import Decision
from ftc.compiler.vision_plan import row_tokens
from ftc.devices.backends import BACKENDS
from ftc.errors import FtcError
from ftc.kernels import FLASH_ATTENTION, KERNELS
from ftc.spec.models import Spec
from ftc.stages import STAGES

GIB = 1024**3
# On the CPU the model's own loss runs 1.5-2.2x faster than trl's chunked head (benchmarks/loss_head.py) but holds
# the full logits; past this many GiB of them the chunked head leaves that host memory to the rest of the run.
MODEL_LOSS_MAX_LOGITS_GIB = 2.0


def attention_decision(spec: Spec, record: Hardware, precision: str) -> Decision:
    asked = spec.model.attention
    if asked == "flash" and record.backend not in FLASH_ATTENTION.backends:
        raise FtcError(
            f"model.attention = 'flash' runs FlashAttention, whose {FLASH_ATTENTION.backends_why}: the plan is for "
            f"{BACKENDS[record.backend].title} processes, which have no flash kernel",
            f"use 'sdpa' (or 'auto') on {BACKENDS[record.backend].devices}, or plan for a GPU",
        )
    if asked == "flash" and not record.flash_attention:
        raise FtcError(
            f"model.attention = 'flash' needs Ampere or newer; {record.name} has no flash kernel", "use 'sdpa'"
        )
    if asked != "auto":
        return Decision(asked, "set in the spec (model.attention)")
    if record.backend == "cpu":
        return Decision("sdpa", "torch's scaled-dot-product attention, the CPU's fastest kernel")
    if record.flash_attention and precision in ("bf16", "fp16"):
        return Decision(
            "sdpa", f"torch SDPA runs a flash kernel on {record.name} in {precision}: no seq × seq scores kept"
        )
    return Decision("sdpa", "torch SDPA: a memory-efficient kernel where the hardware has one")


def loss_head_decision(spec: Spec, record: Hardware, arch: Architecture | None, micro: int) -> Decision:
    """A listed kernel's loss where the stage's trainer lets it; else trl's chunked head where memory is scarce
    (accelerators), and the model's own, faster loss on the CPU."""
    stage = spec.train.stage
    listed = {KERNELS[name].loss_head for name in spec.train.kernels} & KERNEL_HEADS
    heads = tuple(head for head in STAGES[stage].loss_heads if head not in KERNEL_HEADS or head in listed)
    if spec.train.loss_head != "auto":
        return Decision(spec.train.loss_head, "set in the spec (train.loss_head)")
    kernel = next((KERNELS[name] for name in spec.train.kernels if KERNELS[name].loss_head in heads), None)
    if kernel is not None:
        return Decision(
            kernel.loss_head,
            f"{kernel.library}'s fused linear cross-entropy (train.kernels): the loss and its gradient a chunk of "
            "tokens at a time, never the full logits",
        )
    if len(heads) == 1:
        how = "trl's chunked head" if heads[0] == "fused" else "the model's own loss"
        if STAGES[stage].logit_bytes:
            how = "its trainer's log-probabilities from the full logits"
        return Decision(heads[0], f"{how}: the only way train.stage = '{stage}' computes its loss")
    if record.backend != "cpu":
        return Decision("fused", f"{record.name}: trl's chunked head, which never holds the full logits at once")
    if arch is None:
        return Decision("fused", "the vocabulary is unknown, so the full logits cannot be bounded: trl's chunked head")
    logits_gib = micro * row_tokens(spec, arch) * arch.vocab_size * MODEL_LOSS_BYTES_PER_LOGIT / GIB
    if logits_gib > MODEL_LOSS_MAX_LOGITS_GIB:
        return Decision(
            "fused",
            f"CPU: the model's own loss would hold {logits_gib:.1f} GiB of logits (over "
            f"{MODEL_LOSS_MAX_LOGITS_GIB:g} GiB), so trl's chunked head",
        )
    return Decision(
        "model",
        f"CPU: the model's own loss over the full logits ({_gib_text(logits_gib)} at the peak) is 1.5-2.2x faster than "
        "trl's chunked head; entropy and token accuracy are computed at logging steps",
    )


# The loss heads a kernel brings (ftc.kernels), offered only where train.kernels lists it.
KERNEL_HEADS = {kernel.loss_head for kernel in KERNELS.values() if kernel.loss_head}


def check_kernels(spec: Spec, record: Hardware, arch: Architecture | None) -> None:
    """What train.kernels cannot do on this hardware or with this model (the spec checked the stage)."""
    for name in spec.train.kernels:
        kernel = KERNELS[name]
        if record.backend not in kernel.backends:
            allowed = " or ".join(BACKENDS[backend].devices for backend in kernel.backends)
            raise FtcError(
                f"train.kernels = {list(spec.train.kernels)}: {kernel.library} runs on {allowed} only: "
                f"{kernel.backends_why}, and the plan is for {record.name}",
                f"plan for a GPU (e.g. --hardware H100), or remove {name!r} from train.kernels",
            )
        if arch is not None and kernel.model_types and arch.model_type not in kernel.model_types:
            raise FtcError(
                f"train.kernels = {list(spec.train.kernels)}: {kernel.library} has no kernels for model_type "
                f"{arch.model_type!r}, so it would patch nothing",
                f"remove {name!r} from train.kernels; it has kernels for: {', '.join(kernel.model_types)}",
            )


def kernels_decision(spec: Spec, loss_head: Decision) -> Decision:
    """What each listed kernel patches, and whether it computes the loss or the stage's trainer does."""
    names = list(spec.train.kernels)
    if not names:
        return Decision([], "no speed kernels: the stock transformers layers")
    said = []
    for name in names:
        kernel = KERNELS[name]
        if loss_head.value == kernel.loss_head:
            loss = "and computes the loss"
        elif kernel.loss_head in STAGES[spec.train.stage].loss_heads:
            loss = f"in the blocks only: train.loss_head = {loss_head.value!r} keeps that loss"
        else:
            loss = (
                f"in the blocks only: the trainer of train.stage = {spec.train.stage!r} computes the loss itself "
                f"(the {loss_head.value!r} head)"
            )
        said.append(f"{kernel.library} ({kernel.licence}) patches the model {loss}")
    return Decision(names, "set in the spec (train.kernels); " + "; ".join(said))


def _gib_text(gib: float) -> str:
    return f"{gib:.1f} GiB" if gib >= 1 else f"{gib * 1024:.0f} MiB"
