"""What the rollout stages (those whose record `samples`) hold while they sample replies, before each update.

No gradients or saved activations exist then, but every layer's keys and values grow with the
sequence: rows × seq_len × (key + value width) per layer, in the compute dtype (autocast computes
them in bf16/fp16 even over fp32 weights). The prefill adds its widest transient, one block's gated
MLP over the prompt (gate, up and their product), and each decoding position its logits over the
vocabulary in fp32 for the sampler. The cache is counted at seq_len = cutoff_len, the longest a
prompt and its reply may be together: an upper bound, as for training.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftc.compiler.memory.states import DTYPE_BYTES
from ftc.compiler.model_shapes import Architecture


@dataclass(frozen=True)
class Sampling:
    cache: float  # bytes: the KV cache at its longest, plus the prefill's widest transient
    logits: float  # bytes: one position's logits per row, in fp32


def sampling_memory(arch: Architecture, rows: int, seq_len: int, precision: str) -> Sampling:
    width = DTYPE_BYTES[precision]
    cache = 2 * arch.num_layers * rows * seq_len * arch.kv_width * width
    prefill = 3 * rows * seq_len * arch.intermediate_size * width
    return Sampling(cache=cache + prefill, logits=rows * arch.vocab_size * 4)
