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


# How a vision tower's blocks normalize: CLIP's LayerNorm (weight and bias), Qwen2.5-VL's RMSNorm (weight)
VisionNorm = Literal["layer", "rms"]
# How spatial_merge² neighbouring patches become one token: Qwen's merger concatenates them (its MLP reads
# spatial_merge² × the tower's width); Gemma 3's projector averages them (an AvgPool2d), keeping the width.
PatchMerge = Literal["concat", "average"]
# mlp: two biased linears with a GELU between (LLaVA, Qwen's merger); matrix: one unbiased matrix (Gemma 3)
Projector = Literal["mlp", "matrix"]


@dataclass(frozen=True)
class Vision:
    """An image encoder and the projector that turns its patches into language-model tokens.

    Three designs are described by these fields alone. A fixed-resolution tower (LLaVA's CLIP ViT) embeds
    an `image_size` square into (image_size / patch_size)² patches plus a class token, learns one position
    per patch, and hands one token per patch to a two-layer MLP projector. A dynamic-resolution tower
    (Qwen2-VL's ViT) cuts any image into patch_size squares (`temporal_patch_size` frames deep), uses
    rotary positions, and its merger folds each `spatial_merge`² neighbours into one token. Gemma 3's
    SigLIP tower is fixed-resolution too (896 px, 4096 patches, no class token); its projector averages
    each 4 × 4 patches into one of 256 tokens, normalizes it and multiplies it by one matrix.
    """

    model_type: str  # vision_config's model_type, or the whole model's where the tower has none of its own
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    patch_size: int
    out_size: int  # the language model's hidden size: what one image token is projected to
    in_channels: int = 3
    image_size: int | None = None  # the fixed square every image is resized to; None: dynamic resolution
    temporal_patch_size: int = 1  # frames in one patch (Qwen2-VL treats an image as two equal frames)
    spatial_merge: int = 1  # each spatial_merge × spatial_merge patches become one language-model token
    class_token: bool = False  # CLIP's learned [CLS] embedding, counted among the tower's tokens
    learned_positions: bool = False  # one position embedding per patch (and class token); else rotary
    pre_norm: bool = False  # CLIP normalizes the embeddings before the first block
    post_norm: bool = False  # CLIP's post_layernorm after the last block (built, though LLaVA reads layer -2)
    mlp: Mlp = "plain"  # every linear in a vision block is biased, whichever shape its MLP has
    norm: VisionNorm = "layer"
    patch_bias: bool = False  # SigLIP's patch convolution is biased; CLIP's and Qwen's are not
    # SigLIP's attention-pooling head: built whenever vision_use_head is on (transformers' default), read by
    # no image+text model; Gemma 3's published configs turn it off.
    pooling_head: bool = False
    merge: PatchMerge = "concat"
    projector: Projector = "mlp"
    # Qwen's merger normalizes each patch before folding (with the tower's norm); Gemma 3 each pooled token (RMS)
    projector_norm: VisionNorm | None = None
    projector_hidden: int = 0  # width of the projector's middle layer
    feature_layers: int = 1  # tower layers whose outputs LLaVA concatenates before projecting
    # LLaVA's "default" feature strategy drops the class token; "full" keeps it as an image token.
    keeps_class_token: bool = False
    # Tokens the processor writes around each image's, beside the placeholder it replaces (Gemma 3: the
    # end-of-image token and a blank line on either side).
    marker_tokens: int = 0

    @property
    def patches_per_token(self) -> int:
        return self.spatial_merge * self.spatial_merge

    @property
    def fixed_image_tokens(self) -> int | None:
        """Language-model tokens per image for a fixed-resolution tower (576 for LLaVA-1.5); None for dynamic."""
        if self.image_size is None:
            return None
        return (self.image_size // self.patch_size) ** 2 // self.patches_per_token + self.keeps_class_token


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
    # An image+text model's encoder and projector; None for a text-only model. The fields above are then
    # those of its language model.
    vision: Vision | None = None

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
