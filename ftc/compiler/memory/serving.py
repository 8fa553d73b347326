"""What serving a model holds on one device: its weights (and a LoRA adapter beside them, unmerged), plus the
KV cache of the longest sequences it is asked to keep at once and the sampler's logits (`sampling_memory`)."""

from __future__ import annotations

from dataclasses import dataclass

from ftc.compiler.memory.sampling import sampling_memory
from ftc.compiler.memory.states import DTYPE_BYTES, GIB
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import count_parameters


@dataclass(frozen=True)
class ServingMemory:
    weights: float  # bytes
    adapter: float
    cache: float  # KV cache at max_model_len for every sequence, with the prefill's widest transient
    logits: float

    @property
    def total_gib(self) -> float:
        return (self.weights + self.adapter + self.cache + self.logits) / GIB


def serving_memory(
    arch: Architecture, precision: str, max_model_len: int, sequences: int = 1, adapter_parameters: int = 0
) -> ServingMemory:
    width = DTYPE_BYTES[precision]
    sampled = sampling_memory(arch, sequences, max_model_len, precision)
    return ServingMemory(
        weights=count_parameters(arch).total * width,
        adapter=adapter_parameters * width,
        cache=sampled.cache,
        logits=sampled.logits,
    )
