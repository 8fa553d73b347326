"""Image+text models' shapes: the registry's vision entries read from config.json, counted exactly.

The published configs are written out here, key by key as their config.json files hold them, and built
by transformers' own image+text classes on the meta device, so the counts are checked against the
implementation rather than against our own arithmetic.
"""

from __future__ import annotations

import pytest

from ftc.compiler.architectures import VISION_ARCHITECTURES, architecture_from_config, find_architecture
from ftc.compiler.params import count_parameters, projector_parameters, vision_tower_parameters
from ftc.errors import FtcError

_CLIP_L_336 = {
    "model_type": "clip_vision_model",
    "hidden_size": 1024,
    "image_size": 336,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
}

# config.json of each published checkpoint (the shape keys; dtype, token ids and rope settings left out)
PUBLISHED = {
    "llava-hf/llava-1.5-7b-hf": {
        "model_type": "llava",
        "text_config": {"model_type": "llama", "max_position_embeddings": 4096, "vocab_size": 32064},
        "vision_config": _CLIP_L_336,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
    },
    "llava-hf/llava-1.5-13b-hf": {
        "model_type": "llava",
        "text_config": {
            "model_type": "llama",
            "hidden_size": 5120,
            "intermediate_size": 13824,
            "num_attention_heads": 40,
            "num_hidden_layers": 40,
            "max_position_embeddings": 4096,
            "vocab_size": 32064,
        },
        "vision_config": _CLIP_L_336,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
    },
}


def _qwen2_vl(hidden, intermediate, layers, heads, kv_heads, vocab, tied):
    return {
        "model_type": "qwen2_vl",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": tied,
        "vision_config": {
            "depth": 32,
            "embed_dim": 1280,
            "mlp_ratio": 4,
            "num_heads": 16,
            "in_chans": 3,
            "hidden_size": hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    }


def _qwen2_5_vl(hidden, intermediate, layers, heads, kv_heads, vocab, tied, tower_intermediate):
    config = _qwen2_vl(hidden, intermediate, layers, heads, kv_heads, vocab, tied)
    config |= {"model_type": "qwen2_5_vl", "max_position_embeddings": 128000}
    config["vision_config"] = {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": tower_intermediate,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": hidden,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
    }
    return config


PUBLISHED |= {
    "Qwen/Qwen2-VL-2B-Instruct": _qwen2_vl(1536, 8960, 28, 12, 2, 151936, True),
    "Qwen/Qwen2-VL-7B-Instruct": _qwen2_vl(3584, 18944, 28, 28, 4, 152064, False),
    "Qwen/Qwen2.5-VL-3B-Instruct": _qwen2_5_vl(2048, 11008, 36, 16, 2, 151936, True, 3420),
    "Qwen/Qwen2.5-VL-7B-Instruct": _qwen2_5_vl(3584, 18944, 28, 28, 4, 152064, False, 3420),
    "Qwen/Qwen2.5-VL-32B-Instruct": _qwen2_5_vl(5120, 27648, 64, 40, 8, 152064, False, 3456),
    "Qwen/Qwen2.5-VL-72B-Instruct": _qwen2_5_vl(8192, 29568, 80, 64, 8, 152064, False, 3456),
}


_SIGLIP_896 = {
    "hidden_size": 1152,
    "image_size": 896,
    "intermediate_size": 4304,
    "model_type": "siglip_vision_model",
    "num_attention_heads": 16,
    "num_hidden_layers": 27,
    "patch_size": 14,
    "vision_use_head": False,
}


def _gemma3(text: dict) -> dict:
    return {
        "model_type": "gemma3",
        "mm_tokens_per_image": 256,
        "text_config": {"model_type": "gemma3_text", "sliding_window": 1024, **text},
        "vision_config": _SIGLIP_896,
    }


PUBLISHED |= {
    # the 4B's config.json names only these text keys; the rest are Gemma3TextConfig's defaults
    "google/gemma-3-4b-it": _gemma3({"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34}),
    "google/gemma-3-12b-it": _gemma3(
        {
            "hidden_size": 3840,
            "intermediate_size": 15360,
            "num_hidden_layers": 48,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 256,
            "vocab_size": 262208,
            "max_position_embeddings": 131072,
        }
    ),
    "google/gemma-3-27b-it": _gemma3(
        {
            "hidden_size": 5376,
            "intermediate_size": 21504,
            "num_hidden_layers": 62,
            "num_attention_heads": 32,
            "num_key_value_heads": 16,
            "head_dim": 128,
            "query_pre_attn_scalar": 168,
            "vocab_size": 262208,
            "max_position_embeddings": 131072,
        }
    ),
}


def meta_vlm(config: dict):
    """transformers' image+text model for this config, with shapes but no storage."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = dict(config)
    hf_config = transformers.AutoConfig.for_model(config.pop("model_type"), **config)
    with torch.device("meta"):
        return transformers.AutoModelForImageTextToText.from_config(hf_config)


def numel(parameters) -> int:
    return sum(p.numel() for p in parameters)


def test_the_registry_holds_every_published_vision_checkpoint():
    assert set(VISION_ARCHITECTURES) == set(PUBLISHED)
    for hub_id, config in PUBLISHED.items():
        assert architecture_from_config(config) == VISION_ARCHITECTURES[hub_id].architecture, hub_id
        assert find_architecture(hub_id) == VISION_ARCHITECTURES[hub_id].architecture


@pytest.mark.parametrize("hub_id", sorted(PUBLISHED))
def test_counts_match_transformers(hub_id):
    model = meta_vlm(PUBLISHED[hub_id])
    count = count_parameters(VISION_ARCHITECTURES[hub_id].architecture)
    assert count.total == numel(model.parameters())  # a tied head counts once
    named = dict(model.named_parameters())
    image_side = {name: p for name, p in named.items() if "language_model" not in name and "lm_head" not in name}
    projector = {name: p for name, p in image_side.items() if "multi_modal_projector" in name or ".merger." in name}
    assert count.projector == numel(projector.values())
    assert count.vision == numel(image_side.values()) - count.projector


def test_llava_1_5_7b_by_hand():
    vision = find_architecture("llava-hf/llava-1.5-7b-hf").vision
    patches = (336 // 14) ** 2  # 576, and one class token beside them in the tower
    block = (4 * 1024 * 1024 + 4 * 1024) + (2 * 1024 * 4096 + 4096 + 1024) + 2 * 2 * 1024
    embeddings = 3 * 14 * 14 * 1024 + (patches + 1) * 1024 + 1024
    assert vision_tower_parameters(vision) == embeddings + 24 * block + 2 * 2 * 1024
    assert projector_parameters(vision) == 1024 * 4096 + 4096 + 4096 * 4096 + 4096
    assert vision.fixed_image_tokens == 576  # the "default" strategy drops the class token


def test_qwen2_vl_7b_by_hand():
    vision = find_architecture("Qwen/Qwen2-VL-7B-Instruct").vision
    block = (4 * 1280 * 1280 + 4 * 1280) + (2 * 1280 * 5120 + 5120 + 1280) + 2 * 2 * 1280
    assert vision_tower_parameters(vision) == 3 * 2 * 14 * 14 * 1280 + 32 * block
    merged = 4 * 1280  # 2×2 patches folded into one token before the merger's MLP
    assert projector_parameters(vision) == 2 * 1280 + merged * merged + merged + merged * 3584 + 3584
    assert vision.fixed_image_tokens is None


def test_a_vision_config_missing_a_key_is_located():
    config = {**PUBLISHED["Qwen/Qwen2-VL-7B-Instruct"]}
    config["vision_config"] = {k: v for k, v in config["vision_config"].items() if k != "depth"}
    with pytest.raises(FtcError, match="needs 'depth'") as caught:
        architecture_from_config(config, source="model/config.json")
    assert "model/config.json" in str(caught.value)


def test_an_unknown_llava_language_model_is_refused():
    config = {**PUBLISHED["llava-hf/llava-1.5-7b-hf"], "text_config": {"model_type": "nonesuch"}}
    with pytest.raises(FtcError, match="text_config has model_type 'nonesuch'"):
        architecture_from_config(config)


def test_gemma_3_4b_by_hand():
    arch = find_architecture("google/gemma-3-4b-it")
    vision = arch.vision
    h, i = 1152, 4304
    block = (4 * h * h + 4 * h) + (2 * h * i + i + h) + 2 * 2 * h
    embeddings = 3 * 14 * 14 * h + h + (896 // 14) ** 2 * h  # a biased patch convolution, 4096 learned positions
    assert vision_tower_parameters(vision) == embeddings + 27 * block + 2 * h  # and the post-LayerNorm
    assert projector_parameters(vision) == h + h * 2560  # an RMSNorm's weight and one unbiased matrix
    assert vision.fixed_image_tokens == 256  # 64 × 64 patches averaged 4 × 4
    # the language model: Gemma 2's four norms per block and a q and k norm of head_dim each
    assert (arch.norms_per_layer, arch.qk_norm, arch.head_dim, arch.tied_embeddings) == (4, "per_head", 256, True)
    assert round(count_parameters(arch).total / 1e9, 2) == 4.30


def test_siglips_pooling_head_is_counted_when_the_config_leaves_it_on():
    config = {**PUBLISHED["google/gemma-3-4b-it"]}
    config["vision_config"] = {k: v for k, v in _SIGLIP_896.items() if k != "vision_use_head"}  # transformers: on
    arch = architecture_from_config(config)
    assert arch.vision.pooling_head
    assert count_parameters(arch).total == numel(meta_vlm(config).parameters())


def test_gemma_3_tokens_that_do_not_pool_the_patches_evenly_are_refused():
    config = {**PUBLISHED["google/gemma-3-4b-it"], "mm_tokens_per_image": 100}
    with pytest.raises(FtcError, match="mm_tokens_per_image = 100 does not pool") as caught:
        architecture_from_config(config, source="model/config.json")
    assert "model/config.json" in str(caught.value) and "side divides 64" in caught.value.hint


def test_each_image_text_family_names_a_template_that_writes_images():
    """The template a family's record names (ftc init --vision sets it) is in the registry and places images."""
    from ftc.compiler.model_families import FAMILIES
    from ftc.spec.chat_templates import TEMPLATES

    named = {name: family.vision.template for name, family in FAMILIES.items() if family.vision is not None}
    assert named == {"llava": "llava", "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "gemma3": "gemma3"}
    assert all(TEMPLATES[template].image is not None for template in named.values())
