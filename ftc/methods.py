"""The training methods: one record per method, saying what trains and how the base is held.

The spec, the compiler's memory estimate and the runtime ask these records, never a method's name
(a test in the suite says so). Records only, importing nothing: the spec layer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What the optimizer updates: every weight of the model, the layers [freeze] chooses, or an adapter (LoRA,
# OFT) beside a frozen base.
Trains = Literal["all weights", "chosen layers", "adapter"]


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    trains: Trains
    quantizes: bool = False  # the frozen base is loaded in 4 or 8 bits (bitsandbytes, quantization.bits)
    sections: tuple[str, ...] = ()  # the spec sections that configure it; a starter writes them out live
    adapter: str = ""  # the spec section that shapes the adapter it trains (one of `sections`); "" for none
    # model.adapter: it can train an earlier run's adapter further (a LoRA one: ftc.compiler.adapters reads it)
    continues_adapter: bool = False
    # Why [llama_pro]'s added blocks cannot be what it trains (said after "train.method = 'x'"); empty where they can.
    block_expansion_refused: str = ""

    @property
    def has_adapter(self) -> bool:
        """It trains an adapter, saved on its own (adapter/), beside a base that stays as it was."""
        return self.trains == "adapter"

    @property
    def trains_all_weights(self) -> bool:
        return self.trains == "all weights"

    @property
    def trains_chosen_layers(self) -> bool:
        return self.trains == "chosen layers"


def _registry(*methods: Method) -> dict[str, Method]:
    return {method.name: method for method in methods}


# In the order of the spec language's train.method values.
METHODS: dict[str, Method] = _registry(
    Method(
        "full",
        "every weight trains, held in fp32",
        "all weights",
        block_expansion_refused="trains every weight, while LLaMA Pro keeps the base's blocks as they were and trains "
        "only the added copies",
    ),
    Method(
        "freeze",
        "the last layers (or the modules [freeze] names) train; the rest is frozen",
        "chosen layers",
        sections=("freeze",),
    ),
    Method(
        "lora",
        "a low-rank adapter trains beside the frozen base",
        "adapter",
        sections=("lora",),
        adapter="lora",
        continues_adapter=True,
    ),
    Method(
        "qlora",
        "LoRA over a base quantized to 4 or 8 bits",
        "adapter",
        quantizes=True,
        sections=("lora", "quantization"),
        adapter="lora",
        continues_adapter=True,
        block_expansion_refused="quantizes the base as it loads: its blocks cannot be copied with zeroed output "
        "projections at full precision, nor saved whole with the copies",
    ),
    Method(
        "oft",
        "orthogonal fine-tuning: a trained block-diagonal rotation turns each adapted layer's input",
        "adapter",
        sections=("oft",),
        adapter="oft",
        block_expansion_refused="puts its rotations on every adapted layer, not on LLaMA Pro's copies alone",
    ),
)
