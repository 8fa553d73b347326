"""The shape facts of a decoder-only language model: everything its parameter count depends on.

An `Architecture` does not say where it came from: `architectures.find_architecture` looks a hub
id up among published models, and `model_families.architecture_from_config` reads a config.json
that the caller has already parsed. Both are pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftc.quantizers import QuantScheme

# gated: gate, up and down matrices (SwiGLU, GeGLU); plain: up and down only (Falcon, BLOOM, StarCoder2)
Mlp = Literal["gated", "plain"]
# qkv: biases on the q, k and v projections but not on the output projection (Qwen2, ChatGLM3)
AttentionBias = Literal["none", "qkv", "all"]
# rms: a weight per channel; layer: a weight and a bias; parameter_free: OLMo's LayerNorm learns nothing
Norm = Literal["rms", "layer", "parameter_free"]
# per_head: one head_dim-wide weight shared by every head (Qwen3); across_heads: one weight per channel
# of all heads together (OLMo 2)
QkNorm = Literal["none", "per_head", "across_heads"]


@dataclass(frozen=True)
class Moe:
    """Mixture-of-experts blocks: a router sends each token to `experts_per_token` of `num_experts` gated MLPs."""

    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_expert_intermediate_size: int = 0  # one always-on expert this wide (Qwen MoE); 0 for none
    shared_expert_gate: bool = False  # a learned sigmoid gate on the shared expert's output (Qwen2-MoE)
    dense_layers: tuple[int, ...] = ()  # indices of blocks that keep a dense MLP of intermediate_size


@dataclass(frozen=True)
class Architecture:
    model_type: str  # config.json's model_type; it also decides what the linear layers are called
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # fewer than the heads: grouped-query attention; 1: multi-query
    head_dim: int  # explicit because heads × head_dim need not be hidden_size (Gemma, Qwen3)
    intermediate_size: int  # width of the dense MLP
    vocab_size: int
    tied_embeddings: bool  # the output head reuses the token embedding matrix
    max_position_embeddings: int | None = None  # None where the config sets no limit (ALiBi)
    mlp: Mlp = "gated"
    attention_bias: AttentionBias = "none"
    mlp_bias: bool = False
    norm: Norm = "rms"
    norms_per_layer: int = 2  # 1: Falcon-7B's shared pre-norm; 4: Gemma 2's pre- and post-norms
    qk_norm: QkNorm = "none"
    final_norm: bool = True
    embedding_norm: bool = False  # BLOOM normalizes the embeddings before the first block
    parallel_attention: bool = False  # attention and MLP both read the block's input (Falcon), not one another
    moe: Moe | None = None
    # A checkpoint published quantized (config.json's quantization_config): how its decoder linears are held.
    quantization: QuantScheme | None = None

    @property
    def q_width(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        """Width of the key projection, and of the value projection."""
        return self.num_key_value_heads * self.head_dim

    def is_sparse(self, layer: int) -> bool:
        """Whether decoder block `layer` routes tokens to experts instead of one dense MLP."""
        return self.moe is not None and layer not in self.moe.dense_layers
