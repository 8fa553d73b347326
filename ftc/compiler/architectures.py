"""Published models whose shapes ftc knows without a network: `ARCHITECTURES`, looked up by hub id.

Each record holds the shape keys of a base model's published config.json, read through the same
`architecture_from_config` that reads a local config.json, so both paths agree. Chat and instruct
variants share their base model's shapes and resolve to it by name; a mirror under another
organization resolves too, since only the repository name is compared. A record's
max_position_embeddings is the base model's, which an instruct variant may set lower.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ftc.compiler.model_families import architecture_from_config
from ftc.compiler.model_shapes import Architecture, Moe

# Callers need one import site for the shapes, however they were found.
__all__ = [
    "ARCHITECTURES",
    "VISION_ARCHITECTURES",
    "Architecture",
    "KnownModel",
    "Moe",
    "architecture_from_config",
    "find_architecture",
]

# Words that name a variant trained from the same weights' shapes, not a different model.
_VARIANT_WORDS = frozenset({"instruct", "chat", "it", "hf", "base", "meta"})


@dataclass(frozen=True)
class KnownModel:
    hub_id: str  # the base model's repository
    config: Mapping[str, Any]  # the shape keys of its published config.json
    also: tuple[str, ...] = ()  # other releases with exactly these shapes

    @property
    def architecture(self) -> Architecture:
        return architecture_from_config(self.config)


def _known(hub_id: str, model_type: str, *, also: tuple[str, ...] = (), **config: Any) -> KnownModel:
    return KnownModel(hub_id, MappingProxyType({"model_type": model_type, **config}), also)


def _llama_style(
    hub_id: str,
    model_type: str,
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    positions: int,
    *,
    also: tuple[str, ...] = (),
    **config: Any,
) -> KnownModel:
    """A model whose config.json uses llama's key names, positionally so the table below reads as columns."""
    return _known(
        hub_id,
        model_type,
        also=also,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        max_position_embeddings=positions,
        **config,
    )


# fmt: off
_KNOWN = (
    # hub id, model_type, hidden_size, intermediate_size, layers, attention heads, key-value heads, vocab, positions
    _llama_style("meta-llama/Llama-2-7b-hf",               "llama",      4096, 11008,  32,  32,  32,  32000,   4096),
    _llama_style("meta-llama/Llama-2-13b-hf",              "llama",      5120, 13824,  40,  40,  40,  32000,   4096),
    _llama_style("meta-llama/Llama-2-70b-hf",              "llama",      8192, 28672,  80,  64,   8,  32000,   4096),
    _llama_style("meta-llama/Meta-Llama-3-8B",             "llama",      4096, 14336,  32,  32,   8, 128256,   8192),
    _llama_style("meta-llama/Meta-Llama-3-70B",            "llama",      8192, 28672,  80,  64,   8, 128256,   8192),
    _llama_style("meta-llama/Llama-3.1-8B",                "llama",      4096, 14336,  32,  32,   8, 128256, 131072),
    _llama_style("meta-llama/Llama-3.1-70B",               "llama",      8192, 28672,  80,  64,   8, 128256, 131072,
                 also=("meta-llama/Llama-3.3-70B-Instruct",)),
    _llama_style("meta-llama/Llama-3.1-405B",              "llama",     16384, 53248, 126, 128,   8, 128256, 131072),
    _llama_style("meta-llama/Llama-3.2-1B",                "llama",      2048,  8192,  16,  32,   8, 128256, 131072,
                 head_dim=64, tie_word_embeddings=True),
    _llama_style("meta-llama/Llama-3.2-3B",                "llama",      3072,  8192,  28,  24,   8, 128256, 131072,
                 head_dim=128, tie_word_embeddings=True),
    _llama_style("mistralai/Mistral-7B-v0.1",              "mistral",    4096, 14336,  32,  32,   8,  32000,  32768,
                 also=("mistralai/Mistral-7B-Instruct-v0.2",)),
    _llama_style("mistralai/Mistral-7B-v0.3",              "mistral",    4096, 14336,  32,  32,   8,  32768,  32768),
    # Mixtral's intermediate_size is the width of each expert
    _llama_style("mistralai/Mixtral-8x7B-v0.1",            "mixtral",    4096, 14336,  32,  32,   8,  32000,  32768,
                 num_local_experts=8, num_experts_per_tok=2),
    # Qwen 1.5, 2 and 2.5 share the qwen2 layout (q, k and v biased); the small ones tie their embeddings
    _llama_style("Qwen/Qwen1.5-7B",                        "qwen2",      4096, 11008,  32,  32,  32, 151936,  32768),
    _llama_style("Qwen/Qwen2-7B",                          "qwen2",      3584, 18944,  28,  28,   4, 152064, 131072),
    _llama_style("Qwen/Qwen2.5-0.5B",                      "qwen2",       896,  4864,  24,  14,   2, 151936,  32768,
                 tie_word_embeddings=True),
    _llama_style("Qwen/Qwen2.5-1.5B",                      "qwen2",      1536,  8960,  28,  12,   2, 151936, 131072,
                 tie_word_embeddings=True),
    _llama_style("Qwen/Qwen2.5-3B",                        "qwen2",      2048, 11008,  36,  16,   2, 151936,  32768,
                 tie_word_embeddings=True),
    _llama_style("Qwen/Qwen2.5-7B",                        "qwen2",      3584, 18944,  28,  28,   4, 152064, 131072),
    _llama_style("Qwen/Qwen2.5-14B",                       "qwen2",      5120, 13824,  48,  40,   8, 152064, 131072),
    _llama_style("Qwen/Qwen2.5-32B",                       "qwen2",      5120, 27648,  64,  40,   8, 152064, 131072),
    _llama_style("Qwen/Qwen2.5-72B",                       "qwen2",      8192, 29568,  80,  64,   8, 152064, 131072),
    _llama_style("Qwen/Qwen1.5-MoE-A2.7B",                 "qwen2_moe",  2048,  5632,  24,  16,  16, 151936,   8192,
                 moe_intermediate_size=1408, shared_expert_intermediate_size=5632, num_experts=60,
                 num_experts_per_tok=4),
    # Qwen 3: head_dim 128 whatever the width; the small ones tie their embeddings
    _llama_style("Qwen/Qwen3-0.6B",                        "qwen3",      1024,  3072,  28,  16,   8, 151936,  40960,
                 head_dim=128, tie_word_embeddings=True),
    _llama_style("Qwen/Qwen3-1.7B",                        "qwen3",      2048,  6144,  28,  16,   8, 151936,  40960,
                 head_dim=128, tie_word_embeddings=True),
    _llama_style("Qwen/Qwen3-4B",                          "qwen3",      2560,  9728,  36,  32,   8, 151936,  40960,
                 head_dim=128, tie_word_embeddings=True),
    _llama_style("Qwen/Qwen3-8B",                          "qwen3",      4096, 12288,  36,  32,   8, 151936,  40960,
                 head_dim=128, tie_word_embeddings=False),
    _llama_style("Qwen/Qwen3-14B",                         "qwen3",      5120, 17408,  40,  40,   8, 151936,  40960,
                 head_dim=128, tie_word_embeddings=False),
    _llama_style("Qwen/Qwen3-32B",                         "qwen3",      5120, 25600,  64,  64,   8, 151936,  40960,
                 head_dim=128, tie_word_embeddings=False),
    _llama_style("Qwen/Qwen3-30B-A3B",                     "qwen3_moe",  2048,  6144,  48,  32,   4, 151936,  40960,
                 head_dim=128, tie_word_embeddings=False, moe_intermediate_size=768, num_experts=128,
                 num_experts_per_tok=8),
    _llama_style("Qwen/Qwen3-235B-A22B",                   "qwen3_moe",  4096, 12288,  94,  64,   4, 151936,  40960,
                 head_dim=128, tie_word_embeddings=False, moe_intermediate_size=1536, num_experts=128,
                 num_experts_per_tok=8),
    # Gemma: head_dim set explicitly, embeddings tied
    _llama_style("google/gemma-2b",                        "gemma",      2048, 16384,  18,   8,   1, 256000,   8192,
                 head_dim=256, also=("google/gemma-1.1-2b-it",)),
    _llama_style("google/gemma-7b",                        "gemma",      3072, 24576,  28,  16,  16, 256000,   8192,
                 head_dim=256, also=("google/gemma-1.1-7b-it",)),
    _llama_style("google/gemma-2-2b",                      "gemma2",     2304,  9216,  26,   8,   4, 256000,   8192,
                 head_dim=256),
    _llama_style("google/gemma-2-9b",                      "gemma2",     3584, 14336,  42,  16,   8, 256000,   8192,
                 head_dim=256),
    _llama_style("google/gemma-2-27b",                     "gemma2",     4608, 36864,  46,  32,  16, 256000,   8192,
                 head_dim=128),
    # Phi-3 mini was released as instruct models only; Phi-3.5 mini keeps the 128k model's shapes
    _llama_style("microsoft/Phi-3-mini-4k-instruct",       "phi3",       3072,  8192,  32,  32,  32,  32064,   4096),
    _llama_style("microsoft/Phi-3-mini-128k-instruct",     "phi3",       3072,  8192,  32,  32,  32,  32064, 131072,
                 also=("microsoft/Phi-3.5-mini-instruct",)),
    # Llama-shaped releases of other labs, and InternLM2 (llama's keys, its own module names)
    _llama_style("01-ai/Yi-6B",                            "llama",      4096, 11008,  32,  32,   4,  64000,   4096),
    _llama_style("01-ai/Yi-34B",                           "llama",      7168, 20480,  60,  56,   8,  64000,   4096),
    _llama_style("deepseek-ai/deepseek-llm-7b-base",       "llama",      4096, 11008,  30,  32,  32, 102400,   4096),
    _llama_style("allenai/OLMo-7B-hf",                     "olmo",       4096, 11008,  32,  32,  32,  50304,   2048,
                 tie_word_embeddings=False),
    _llama_style("internlm/internlm2-7b",                  "internlm2",  4096, 14336,  32,  32,   8,  92544,  32768,
                 bias=False),
    # Families with key names of their own
    _known(
        "baichuan-inc/Baichuan2-7B-Base",
        "baichuan",
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        vocab_size=125696,
        max_position_embeddings=4096,
    ),
    _known(
        "baichuan-inc/Baichuan2-13B-Base",
        "baichuan",
        hidden_size=5120,
        intermediate_size=13696,
        num_hidden_layers=40,
        num_attention_heads=40,
        vocab_size=125696,
        model_max_length=4096,
    ),
    _known(
        "THUDM/chatglm3-6b",
        "chatglm",
        hidden_size=4096,
        num_layers=28,
        num_attention_heads=32,
        multi_query_attention=True,
        multi_query_group_num=2,
        kv_channels=128,
        ffn_hidden_size=13696,
        padded_vocab_size=65024,
        add_qkv_bias=True,
        add_bias_linear=False,
        rmsnorm=True,
        post_layer_norm=True,
        seq_length=8192,
    ),
    _known(
        "tiiuae/falcon-7b",
        "falcon",
        hidden_size=4544,
        num_hidden_layers=32,
        num_attention_heads=71,
        vocab_size=65024,
        multi_query=True,
        parallel_attn=True,
        new_decoder_architecture=False,
        bias=False,
    ),
    _known(
        "bigscience/bloom-7b1",
        "bloom",
        also=("bigscience/bloomz-7b1",),
        hidden_size=4096,
        n_layer=30,
        n_head=32,
        vocab_size=250880,
    ),
)
# fmt: on


_CLIP_VIT_L_336 = {
    "model_type": "clip_vision_model",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
}


def _llava(hub_id: str, text: dict[str, Any]) -> KnownModel:
    """LLaVA-1.5 as converted for transformers: CLIP ViT-L/14 at 336 px, features from its second-last layer."""
    return _known(
        hub_id,
        "llava",
        text_config={"model_type": "llama", "max_position_embeddings": 4096, "vocab_size": 32064, **text},
        vision_config=_CLIP_VIT_L_336,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_token_index=32000,
        tie_word_embeddings=False,
    )


def _qwen2_vl(hub_id: str, *decoder: int, tied: bool) -> KnownModel:
    """Qwen2-VL: the language model's keys at the top level, a 32-block 1280-wide ViT with MLP ratio 4."""
    model = _llama_style(hub_id, "qwen2_vl", *decoder, 32768, tie_word_embeddings=tied)
    tower = {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3, "patch_size": 14}
    tower |= {"spatial_merge_size": 2, "temporal_patch_size": 2, "hidden_size": decoder[0]}
    return KnownModel(hub_id, MappingProxyType({**model.config, "vision_config": tower}))


def _qwen2_5_vl(hub_id: str, *decoder: int, tied: bool, tower_intermediate: int) -> KnownModel:
    """Qwen2.5-VL: a gated-MLP, RMS-normed ViT whose width stays 1280 while the language model grows."""
    model = _llama_style(hub_id, "qwen2_5_vl", *decoder, 128000, tie_word_embeddings=tied)
    tower = {"depth": 32, "hidden_size": 1280, "intermediate_size": tower_intermediate, "num_heads": 16}
    tower |= {"in_chans": 3, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    tower |= {"out_hidden_size": decoder[0], "window_size": 112}
    return KnownModel(hub_id, MappingProxyType({**model.config, "vision_config": tower}))


_SIGLIP_SO400M_896 = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 896,
    "patch_size": 14,
    "vision_use_head": False,
}


def _gemma3(hub_id: str, *decoder: int, head_dim: int) -> KnownModel:
    """Gemma 3 (4B and up): SigLIP-So400m at 896 px, its 4096 patches averaged into 256 tokens per image."""
    hidden, intermediate, layers, heads, kv_heads = decoder
    text = {"model_type": "gemma3_text", "hidden_size": hidden, "intermediate_size": intermediate}
    text |= {"num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads}
    text |= {"head_dim": head_dim, "vocab_size": 262208, "max_position_embeddings": 131072}
    return _known(
        hub_id,
        "gemma3",
        also=(hub_id.removesuffix("-it") + "-pt",),
        text_config=text,
        vision_config=_SIGLIP_SO400M_896,
        mm_tokens_per_image=256,
        tie_word_embeddings=True,
    )


# fmt: off
# Image+text models. The instruct releases are the published ones; their shapes are the language model's
# columns as above (hidden, intermediate, layers, heads, key-value heads, vocab) plus the vision tower.
_KNOWN_VISION = (
    _llava("llava-hf/llava-1.5-7b-hf", {}),
    _llava("llava-hf/llava-1.5-13b-hf", {"hidden_size": 5120, "intermediate_size": 13824,
                                          "num_hidden_layers": 40, "num_attention_heads": 40}),
    _qwen2_vl("Qwen/Qwen2-VL-2B-Instruct",      1536,  8960, 28, 12, 2, 151936, tied=True),
    _qwen2_vl("Qwen/Qwen2-VL-7B-Instruct",      3584, 18944, 28, 28, 4, 152064, tied=False),
    _qwen2_5_vl("Qwen/Qwen2.5-VL-3B-Instruct",  2048, 11008, 36, 16, 2, 151936, tied=True, tower_intermediate=3420),
    _qwen2_5_vl("Qwen/Qwen2.5-VL-7B-Instruct",  3584, 18944, 28, 28, 4, 152064, tied=False, tower_intermediate=3420),
    _qwen2_5_vl("Qwen/Qwen2.5-VL-32B-Instruct", 5120, 27648, 64, 40, 8, 152064, tied=False, tower_intermediate=3456),
    _qwen2_5_vl("Qwen/Qwen2.5-VL-72B-Instruct", 8192, 29568, 80, 64, 8, 152064, tied=False, tower_intermediate=3456),
    _gemma3("google/gemma-3-4b-it",             2560, 10240, 34,  8,  4, head_dim=256),
    _gemma3("google/gemma-3-12b-it",            3840, 15360, 48, 16,  8, head_dim=256),
    _gemma3("google/gemma-3-27b-it",            5376, 21504, 62, 32, 16, head_dim=128),
)
# fmt: on

ARCHITECTURES: dict[str, KnownModel] = {model.hub_id: model for model in _KNOWN}
# Kept apart from the text models because their tests build them with transformers' image+text classes.
VISION_ARCHITECTURES: dict[str, KnownModel] = {model.hub_id: model for model in _KNOWN_VISION}


def repository_key(name_or_path: str) -> str:
    """'meta-llama/Meta-Llama-3-8B-Instruct' → 'llama-3-8b': the repository name without variant words."""
    repository = re.split(r"[\\/]", name_or_path.strip().rstrip("/\\"))[-1].lower()
    return "-".join(word for word in repository.split("-") if word not in _VARIANT_WORDS)


_BY_KEY: dict[str, KnownModel] = {
    repository_key(hub_id): model for model in (*_KNOWN, *_KNOWN_VISION) for hub_id in (model.hub_id, *model.also)
}


def find_architecture(name_or_path: str) -> Architecture | None:
    """The shapes of a published model named by hub id (any organization, any chat/instruct variant), or None."""
    model = _BY_KEY.get(repository_key(name_or_path))
    return model.architecture if model else None
