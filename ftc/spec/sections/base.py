"""What every section shares: the strict, frozen base model, the located rule error, and the value sets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from ftc.kernels import KERNELS
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import ON_THE_FLY
from ftc.spec.diagnostics import Code
from ftc.stages import STAGES

# The names come from the records, so a new stage or method is its record (and its runtime), not a list here too.
Stage = Literal[tuple(STAGES)]  # in the records' order: messages and the JSON Schema list them so
Method = Literal[tuple(METHODS)]
QuantBackend = Literal[ON_THE_FLY]  # the backends that quantize a base as it loads
DataFormat = Literal["alpaca", "sharegpt", "messages", "preference", "kto", "text"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
Strategy = Literal["auto", "single", "ddp", "zero1", "zero2", "zero3", "fsdp"]
Offload = Literal["auto", "none", "optimizer", "optimizer+params"]
Optimizer = Literal[tuple(OPTIMIZERS)]
Attention = Literal["auto", "eager", "sdpa", "flash"]
LossHeadChoice = Literal["auto", "fused", "model", "liger"]
KernelName = Literal[tuple(KERNELS)]
RopeType = Literal["linear", "dynamic", "yarn", "llama3"]  # transformers' rope_type names
# PiSSA and OLoRA move the adapter's starting point into the base weights (which they change).
LoraInit = Literal["default", "gaussian", "pissa", "pissa_fast", "olora", "loftq"]


class Section(BaseModel):
    # defer_build: only Spec needs a validator; building one per section costs startup time.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def rule_error(message: str, hint: str, at: str | None = None, *, code: Code) -> PydanticCustomError:
    """A rule of ours broken, most often one between keys; the diagnostics print its hint and code. `at`
    (a dotted key path from the top of the spec, e.g. "quantization.bits") is the key to report it at,
    when that is not where the rule lives; the message names the other side."""
    return PydanticCustomError("spec_rule", message, {"hint": hint, "code": code.value, **({"at": at} if at else {})})
