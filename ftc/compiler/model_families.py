"""Model families: how each config.json `model_type` spells its shapes, and what it calls its layers.

`FAMILIES` holds one record per model_type. A record reads a parsed config.json into an
`Architecture`, using the keys and defaults of that model_type's transformers config class (or of
the model's own code, for the remote-code families InternLM2, ChatGLM and Baichuan), so a key
missing from an older config.json means what it means to transformers. Reading the file itself is
the caller's business: this module is pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ftc.compiler.model_shapes import Architecture, Moe, Vision
from ftc.errors import FtcError
from ftc.quantizers import scheme_from_config

Config = Mapping[str, Any]

_LLAMA_STYLE_KEYS = (
    "hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size "
    "(and head_dim and tie_word_embeddings where they differ from the defaults)"
)


@dataclass(frozen=True)
class VisionParts:
    """Where an image+text model keeps its parts, as transformers names its modules (dotted paths)."""

    tower: str  # the vision tower (image encoder)
    projector: str  # what turns the tower's patches into language-model tokens; it may sit inside the tower
    # The chat template (a name in ftc.spec.chat_templates.TEMPLATES) that speaks the model's turns and writes
    # the image text its processor expands: what `ftc init --vision` sets for the model.
    template: str
    # The keys of its image processor's `size` that bound an image's pixels (min, max), for data.image_min_pixels
    # and data.image_max_pixels; None: a fixed-resolution processor, which resizes every image to one square.
    pixel_bounds: tuple[str, str] | None = None


# Qwen2.5-VL speaks Qwen2-VL's ChatML and image markers.
_QWEN_VL_PARTS = VisionParts(
    "model.visual", "model.visual.merger", template="qwen2_vl", pixel_bounds=("shortest_edge", "longest_edge")
)


@dataclass(frozen=True)
class Family:
    model_type: str
    read: Callable[[Config], Architecture]
    # The class of one decoder block, the unit FSDP shards and gathers: transformers' class, or, for the
    # remote-code families, the one the model's own modeling file defines.
    decoder_layer: str
    fused_qkv: bool = False  # one linear layer makes q, k and v
    fused_gate_up: bool = False  # one linear layer makes the gate and up projections
    # Our module names (q_proj ... down_proj, qkv_proj, gate_up_proj) → this family's, where they differ.
    module_names: Mapping[str, str] = field(default_factory=dict)
    # Why [llama_pro] cannot insert identity copies of its blocks (said after "model_type 'x'"); empty where it can.
    block_expansion_refused: str = ""
    # Why train.shift_attention cannot run on it; "" where its attention calls through transformers' attention
    # interface (ALL_ATTENTION_FUNCTIONS), where ftc's shifted sparse attention is registered.
    shift_attention_why_not: str = ""
    # An image+text model's parts; None for a text-only model (loaded as a causal LM).
    vision: VisionParts | None = None


def architecture_from_config(config: Config, source: str = "config.json") -> Architecture:
    """The shapes in a Hugging Face config.json, already parsed into a dict; `source` names it in errors."""
    model_type = config.get("model_type")
    if not model_type:
        raise FtcError(
            f"{source} has no model_type, so its keys cannot be interpreted",
            f"a model's config.json names its model_type; known: {', '.join(sorted(FAMILIES))}",
        )
    family = FAMILIES.get(str(model_type).lower())
    if family is None:
        raise FtcError(
            f"ftc does not know the layout of model_type '{model_type}'",
            f"known: {', '.join(sorted(FAMILIES))}; a llama-shaped model can be described as model_type 'llama' "
            f"with {_LLAMA_STYLE_KEYS}",
        )
    try:
        arch = family.read(config)
    except _KeyProblem as problem:
        # The readers only see the dict; the file it came from is named here, once.
        raise FtcError(f"{source}: {problem.message}", problem.hint) from None
    if config.get("quantization_config") is None:
        return arch
    try:  # a checkpoint published quantized: its decoder linears are held as it says
        return replace(arch, quantization=scheme_from_config(config["quantization_config"], source))
    except ValueError as problem:
        raise FtcError(
            str(problem), "start from the unquantized model, or from a gptq, awq, aqlm, bitsandbytes or hqq checkpoint"
        ) from None


def family_of(arch: Architecture) -> Family:
    """The family record for an architecture; one built by hand with an unknown model_type reads as llama-style."""
    return FAMILIES.get(arch.model_type, FAMILIES["llama"])


class _KeyProblem(FtcError):
    """A shape key missing or of the wrong type, raised without the file's name, which the caller adds."""


@dataclass(frozen=True)
class _Kind:
    """What a shape key must hold: `accepts` tells a value of the right type and range; `name` says it in words."""

    name: str
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no layer count


def _is_index(value: Any) -> bool:
    return _is_int(value) and value >= 0


_POSITIVE = _Kind("a positive integer", lambda value: _is_int(value) and value > 0)
_COUNT = _Kind("an integer of 0 or more", _is_index)
_FLAG = _Kind("true or false", lambda value: isinstance(value, bool))
_LAYER_LIST = _Kind("a list of layer indices", lambda value: isinstance(value, list) and all(map(_is_index, value)))

# LLaVA's vision_feature_select_strategy: "default" drops CLIP's class token from the image tokens, the other keeps it.
_FEATURE_STRATEGIES = frozenset({"default", "full"})

# Every key a family reader reads, and what it must hold: a string where a number belongs (or a bool
# where a count belongs) would otherwise surface as a TypeError, or as arithmetic on nonsense.
_KEY_KINDS: dict[str, _Kind] = {
    **dict.fromkeys(
        (
            "hidden_size",
            "n_embed",
            "num_hidden_layers",
            "num_layers",
            "n_layer",
            "num_attention_heads",
            "n_head",
            "num_key_value_heads",
            "num_kv_heads",
            "n_head_kv",
            "multi_query_group_num",
            "head_dim",
            "kv_channels",
            "intermediate_size",
            "ffn_hidden_size",
            "moe_intermediate_size",
            "vocab_size",
            "padded_vocab_size",
            "max_position_embeddings",
            "model_max_length",
            "seq_length",
            "num_experts_per_tok",
            "decoder_sparse_step",
            "num_ln_in_parallel_attn",
            # vision towers (vision_config)
            "depth",
            "embed_dim",
            "num_heads",
            "num_channels",
            "in_channels",
            "in_chans",
            "patch_size",
            "image_size",
            "spatial_merge_size",
            "temporal_patch_size",
            "out_hidden_size",
            "mm_tokens_per_image",
        ),
        _POSITIVE,
    ),
    "mlp_ratio": _Kind("a positive number", lambda value: isinstance(value, int | float) and value > 0),
    **dict.fromkeys(("text_config", "vision_config"), _Kind("an object", lambda value: isinstance(value, dict))),
    "vision_feature_layer": _Kind(
        "a layer index or a list of them", lambda value: _is_int(value) or (isinstance(value, list) and value != [])
    ),
    "vision_feature_select_strategy": _Kind(
        "'default' or 'full'", lambda value: isinstance(value, str) and value in _FEATURE_STRATEGIES
    ),
    # A Qwen MoE config may turn its experts off (0), and the shared expert with them.
    **dict.fromkeys(("num_experts", "num_local_experts", "shared_expert_intermediate_size"), _COUNT),
    **dict.fromkeys(
        (
            "tie_word_embeddings",
            "attention_bias",
            "mlp_bias",
            "qkv_bias",
            "use_bias",
            "bias",
            "add_bias_linear",
            "add_qkv_bias",
            "multi_query",
            "multi_query_attention",
            "new_decoder_architecture",
            "parallel_attn",
            "rmsnorm",
            "post_layer_norm",
            "vision_use_head",
        ),
        _FLAG,
    ),
    "mlp_only_layers": _LAYER_LIST,
}


def _value(config: Config, *keys: str, default: Any = ...) -> Any:
    """The first of `keys` the config sets, checked against its kind; without a default, a missing key is the
    user's error to fix."""
    for key in keys:
        if config.get(key) is not None:
            return _checked(key, config[key])
    if default is ...:
        raise _KeyProblem(
            f"model_type '{config.get('model_type')}' needs '{keys[0]}', which it does not set",
            f"is it the model's own config.json? a {config.get('model_type')} config needs {' or '.join(keys)}",
        )
    return default


def _checked(key: str, value: Any) -> Any:
    kind = _KEY_KINDS[key]  # a reader reading a key not in the table is ftc's bug, and a KeyError says so
    if not kind.accepts(value):
        raise _KeyProblem(
            f"'{key}' must be {kind.name}, found {value!r} ({_json_type(value)})",
            f"a model's config.json holds {key} as {kind.name}; compare it with the published one and fix the value",
        )
    return value


def _json_type(value: Any) -> str:
    """The value's type as JSON names it, since a config.json is where it was written."""
    for python, json_name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(value, python):
            return json_name
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _decoder(
    config: Config, *, tied_by_default: bool = False, head_dim_default: int | None = None, **layout
) -> Architecture:
    """The block most families share, with the keys transformers' LlamaConfig uses."""
    hidden = _value(config, "hidden_size")
    heads = _value(config, "num_attention_heads")
    return Architecture(
        model_type=str(config["model_type"]).lower(),
        hidden_size=hidden,
        num_layers=_value(config, "num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=_value(config, "num_key_value_heads", default=heads),
        head_dim=_value(config, "head_dim", default=head_dim_default or hidden // heads),
        intermediate_size=_value(config, "intermediate_size"),
        vocab_size=_value(config, "vocab_size"),
        tied_embeddings=bool(_value(config, "tie_word_embeddings", default=tied_by_default)),
        max_position_embeddings=_value(config, "max_position_embeddings", "model_max_length", default=None),
        **layout,
    )


# transformers' LlamaConfig defaults, which LLaVA's text_config leaves out where it agrees with them.
_LLAMA_DEFAULTS = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
}


def _sub_config(config: Config, key: str) -> Config:
    """A nested config (text_config, vision_config) that the model's config must carry."""
    return _value(config, key)


def _llava(config: Config) -> Architecture:
    """LLaVA: a CLIP vision tower, a two-layer MLP projector, and a language model read by its own family."""
    text = dict(_value(config, "text_config", default={}))
    text.setdefault("model_type", "llama")
    if str(text["model_type"]).lower() == "llama":
        text = {**_LLAMA_DEFAULTS, **text}
    family = FAMILIES.get(str(text["model_type"]).lower())
    if family is None:
        raise _KeyProblem(
            f"text_config has model_type '{text['model_type']}', whose layout ftc does not know",
            f"known: {', '.join(sorted(FAMILIES))}",
        )
    language = family.read(text)
    tower = _sub_config(config, "vision_config")
    layers = _value(config, "vision_feature_layer", default=-2)
    hidden = _value(tower, "hidden_size")
    return replace(
        language,
        model_type="llava",
        vision=Vision(
            model_type=str(tower.get("model_type", "clip_vision_model")),
            hidden_size=hidden,
            num_layers=_value(tower, "num_hidden_layers"),
            num_heads=_value(tower, "num_attention_heads"),
            intermediate_size=_value(tower, "intermediate_size"),
            patch_size=_value(tower, "patch_size"),
            image_size=_value(tower, "image_size"),
            in_channels=_value(tower, "num_channels", default=3),
            out_size=language.hidden_size,
            class_token=True,
            learned_positions=True,
            pre_norm=True,
            post_norm=True,
            feature_layers=len(layers) if isinstance(layers, list) else 1,
            projector_hidden=language.hidden_size,
            keeps_class_token=_value(config, "vision_feature_select_strategy", default="default") != "default",
        ),
    )


def _qwen_vl(config: Config, model_type: str) -> Architecture:
    """Qwen2-VL and Qwen2.5-VL: a qwen2 language model (its keys at the top level of the published
    config.json, or in text_config) and a dynamic-resolution ViT whose merger folds 2×2 patches into a token."""
    text = {**config, **_value(config, "text_config", default={})}
    language = _qwen2(text)
    tower = _sub_config(config, "vision_config")
    if model_type == "qwen2_vl":  # embed_dim is the tower's width and hidden_size the language model's
        width = _value(tower, "embed_dim")
        shape = {"intermediate_size": int(width * _value(tower, "mlp_ratio")), "out_size": _value(tower, "hidden_size")}
        shape |= {"mlp": "plain", "norm": "layer"}
    else:
        width = _value(tower, "hidden_size")
        shape = {"intermediate_size": _value(tower, "intermediate_size"), "out_size": _value(tower, "out_hidden_size")}
        shape |= {"mlp": "gated", "norm": "rms"}
    merge = _value(tower, "spatial_merge_size")
    return replace(
        language,
        model_type=model_type,
        vision=Vision(
            model_type=model_type,
            hidden_size=width,
            num_layers=_value(tower, "depth"),
            num_heads=_value(tower, "num_heads"),
            patch_size=_value(tower, "patch_size"),
            in_channels=_value(tower, "in_channels", "in_chans", default=3),
            temporal_patch_size=_value(tower, "temporal_patch_size"),
            spatial_merge=merge,
            projector_norm=shape["norm"],
            projector_hidden=width * merge * merge,
            **shape,
        ),
    )


# transformers' Gemma3TextConfig and SiglipVisionConfig defaults, which Gemma 3's published config.json
# leaves out where it agrees with them (google/gemma-3-4b-it names only four of its text model's keys).
_GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 131072,
}
_SIGLIP_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 16,
}


def _gemma3_text(config: Config) -> Architecture:
    """Gemma 3's language model: Gemma 2's four norms per block, and an RMSNorm on each head's q and k."""
    config = {"model_type": "gemma3_text", **_GEMMA3_TEXT_DEFAULTS, **config}
    return _gemma(config, norms_per_layer=4, qk_norm="per_head")


def _gemma3(config: Config) -> Architecture:
    """Gemma 3 (4B and up): a SigLIP tower at a fixed square, whose patches are averaged into
    mm_tokens_per_image tokens, normalized and multiplied by one matrix into the language model."""
    language = replace(_gemma3_text(_value(config, "text_config", default={})), model_type="gemma3")
    language = replace(language, tied_embeddings=bool(_value(config, "tie_word_embeddings", default=True)))
    tower = {**_SIGLIP_DEFAULTS, **_value(config, "vision_config", default={})}
    side = _value(tower, "image_size") // _value(tower, "patch_size")  # patches along each side
    tokens = _value(config, "mm_tokens_per_image", default=256)
    per_side = math.isqrt(tokens)
    if per_side * per_side != tokens or side % per_side:
        raise _KeyProblem(
            f"mm_tokens_per_image = {tokens} does not pool the tower's {side} × {side} patches into a square of "
            "whole tokens",
            "Gemma 3 averages k × k patches into each token: mm_tokens_per_image must be a square whose side "
            f"divides {side} (the published value is 256)",
        )
    return replace(
        language,
        vision=Vision(
            model_type=str(tower.get("model_type", "siglip_vision_model")),
            hidden_size=_value(tower, "hidden_size"),
            num_layers=_value(tower, "num_hidden_layers"),
            num_heads=_value(tower, "num_attention_heads"),
            intermediate_size=_value(tower, "intermediate_size"),
            patch_size=_value(tower, "patch_size"),
            image_size=_value(tower, "image_size"),
            in_channels=_value(tower, "num_channels"),
            out_size=language.hidden_size,
            learned_positions=True,
            post_norm=True,
            patch_bias=True,
            pooling_head=bool(_value(tower, "vision_use_head", default=True)),
            spatial_merge=side // per_side,
            merge="average",
            projector="matrix",
            projector_norm="rms",
            # "\n\n<start_of_image>" + the image's tokens + "<end_of_image>\n\n": the start token is the
            # placeholder itself; the end token and the two blank lines (one token each) are added
            marker_tokens=3,
        ),
    )


def _flag_bias(config: Config, key: str, default: bool = False) -> str:
    return "all" if _value(config, key, default=default) else "none"


def _llama(config: Config) -> Architecture:
    return _decoder(
        config,
        attention_bias=_flag_bias(config, "attention_bias"),
        mlp_bias=bool(_value(config, "mlp_bias", default=False)),
    )


def _qwen_moe_dense_layers(config: Config) -> tuple[int, ...]:
    """Qwen MoE blocks keep a dense MLP when listed in mlp_only_layers or off the decoder_sparse_step grid."""
    listed = set(_value(config, "mlp_only_layers", default=()))
    step = _value(config, "decoder_sparse_step", default=1)
    experts = _value(config, "num_experts", "num_local_experts")
    layers = range(_value(config, "num_hidden_layers"))
    return tuple(i for i in layers if i in listed or experts == 0 or (i + 1) % step)


def _mixtral(config: Config) -> Architecture:
    return _decoder(
        config,
        moe=Moe(
            num_experts=_value(config, "num_local_experts"),
            experts_per_token=_value(config, "num_experts_per_tok"),
            expert_intermediate_size=_value(config, "intermediate_size"),
        ),
    )


def _qwen2_moe(config: Config) -> Architecture:
    return _decoder(
        config,
        attention_bias="qkv" if _value(config, "qkv_bias", default=True) else "none",
        moe=Moe(
            num_experts=_value(config, "num_experts", "num_local_experts"),
            experts_per_token=_value(config, "num_experts_per_tok"),
            expert_intermediate_size=_value(config, "moe_intermediate_size"),
            shared_expert_intermediate_size=_value(config, "shared_expert_intermediate_size"),
            shared_expert_gate=True,
            dense_layers=_qwen_moe_dense_layers(config),
        ),
    )


def _qwen3(config: Config) -> Architecture:
    return _decoder(
        config, head_dim_default=128, attention_bias=_flag_bias(config, "attention_bias"), qk_norm="per_head"
    )


def _qwen3_moe(config: Config) -> Architecture:
    return _decoder(
        config,
        attention_bias=_flag_bias(config, "attention_bias"),
        qk_norm="per_head",
        moe=Moe(
            num_experts=_value(config, "num_experts", "num_local_experts"),
            experts_per_token=_value(config, "num_experts_per_tok"),
            expert_intermediate_size=_value(config, "moe_intermediate_size"),
            dense_layers=_qwen_moe_dense_layers(config),
        ),
    )


def _gemma(config: Config, norms_per_layer: int = 2, **layout: Any) -> Architecture:
    return _decoder(
        config,
        tied_by_default=True,
        head_dim_default=256,
        attention_bias=_flag_bias(config, "attention_bias"),
        norms_per_layer=norms_per_layer,
        **layout,
    )


def _starcoder2(config: Config) -> Architecture:
    biased = bool(_value(config, "use_bias", default=True))
    return _decoder(
        config,
        tied_by_default=True,
        mlp="plain",
        attention_bias="all" if biased else "none",
        mlp_bias=biased,
        norm="layer",
    )


def _falcon(config: Config) -> Architecture:
    hidden = _value(config, "hidden_size", "n_embed")
    heads = _value(config, "num_attention_heads", "n_head")
    new_layout = bool(_value(config, "new_decoder_architecture", default=False))
    parallel = bool(_value(config, "parallel_attn", default=True))
    if new_layout:
        kv_heads = _value(config, "num_kv_heads", "n_head_kv", default=heads)
    else:
        kv_heads = 1 if _value(config, "multi_query", default=True) else heads
    # Parallel attention reads one shared pre-norm, except where the new layout gives attention and MLP one each.
    parallel_norms = _value(config, "num_ln_in_parallel_attn", default=2 if new_layout else 1)
    biased = bool(_value(config, "bias", default=False))
    return Architecture(
        model_type="falcon",
        hidden_size=hidden,
        num_layers=_value(config, "num_hidden_layers", "n_layer"),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=_value(config, "ffn_hidden_size", default=4 * hidden),
        vocab_size=_value(config, "vocab_size"),
        tied_embeddings=bool(_value(config, "tie_word_embeddings", default=True)),
        max_position_embeddings=_value(config, "max_position_embeddings", default=2048),
        mlp="plain",
        attention_bias="all" if biased else "none",
        mlp_bias=biased,
        norm="layer",
        norms_per_layer=2 if not parallel or parallel_norms == 2 else 1,
        parallel_attention=parallel,
    )


def _bloom(config: Config) -> Architecture:
    hidden = _value(config, "hidden_size", "n_embed")
    heads = _value(config, "n_head", "num_attention_heads")
    return Architecture(
        model_type="bloom",
        hidden_size=hidden,
        num_layers=_value(config, "n_layer", "num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=4 * hidden,
        vocab_size=_value(config, "vocab_size"),
        tied_embeddings=bool(_value(config, "tie_word_embeddings", default=True)),
        mlp="plain",
        attention_bias="all",
        mlp_bias=True,
        norm="layer",
        embedding_norm=True,
    )


def _chatglm(config: Config) -> Architecture:
    hidden = _value(config, "hidden_size")
    heads = _value(config, "num_attention_heads")
    bias_everywhere = bool(_value(config, "add_bias_linear", default=False))
    qkv_bias = bool(_value(config, "add_qkv_bias", default=False))
    grouped = bool(_value(config, "multi_query_attention", default=False))
    return Architecture(
        model_type="chatglm",
        hidden_size=hidden,
        num_layers=_value(config, "num_layers"),
        num_attention_heads=heads,
        num_key_value_heads=_value(config, "multi_query_group_num") if grouped else heads,
        head_dim=_value(config, "kv_channels", default=hidden // heads),
        intermediate_size=_value(config, "ffn_hidden_size"),
        vocab_size=_value(config, "padded_vocab_size", "vocab_size"),
        tied_embeddings=False,  # its output_layer is never tied to the embedding
        max_position_embeddings=_value(config, "seq_length", default=None),
        attention_bias="all" if bias_everywhere else "qkv" if qkv_bias else "none",
        mlp_bias=bias_everywhere,
        norm="rms" if _value(config, "rmsnorm", default=True) else "layer",
        final_norm=bool(_value(config, "post_layer_norm", default=True)),
    )


def _qwen2(config: Config) -> Architecture:
    return _decoder(config, attention_bias="qkv")


def _gemma2(config: Config) -> Architecture:
    return _gemma(config, norms_per_layer=4)


def _olmo(config: Config) -> Architecture:
    return _decoder(config, attention_bias=_flag_bias(config, "attention_bias"), norm="parameter_free")


def _olmo2(config: Config) -> Architecture:
    return _decoder(config, attention_bias=_flag_bias(config, "attention_bias"), qk_norm="across_heads")


def _internlm2(config: Config) -> Architecture:
    # InternLM2's config class turns biases on unless told otherwise; q, k, v and the output share the flag.
    return _decoder(config, attention_bias=_flag_bias(config, "bias", default=True))


# The families that compute attention in code of their own, which no registered attention function reaches.
_OWN_ATTENTION_CODE = "computes attention in its own modeling code, not through transformers' attention interface"
_REMOTE_CODE = "runs its repository's own modeling code, which does not call transformers' attention interface"

_FALCON_STYLE_NAMES = {
    "qkv_proj": "query_key_value",
    "o_proj": "dense",
    "up_proj": "dense_h_to_4h",
    "down_proj": "dense_4h_to_h",
}

_MOE_EXPANSION = (
    "routes each token to experts held as stacked tensors: a copy is not the identity by zeroing one down "
    "projection, and LoRA cannot reach the experts; ftc expands dense blocks only"
)
_REMOTE_CODE_EXPANSION = (
    "runs the repository's own modeling code, which ftc cannot rely on to number a copied block's KV cache"
)

FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("llama", _llama, "LlamaDecoderLayer"),
        # Early Yi releases: llama's layout and code under a model_type of their own.
        Family("yi", _llama, "LlamaDecoderLayer"),
        Family("mistral", _decoder, "MistralDecoderLayer"),
        Family("mixtral", _mixtral, "MixtralDecoderLayer", block_expansion_refused=_MOE_EXPANSION),
        Family("qwen2", _qwen2, "Qwen2DecoderLayer"),
        # Image+text models: the decoder block named is the language model's; the vision tower is its own part.
        Family(
            "llava",
            _llava,
            "LlamaDecoderLayer",
            vision=VisionParts("model.vision_tower", "model.multi_modal_projector", template="llava"),
        ),
        Family("qwen2_vl", lambda config: _qwen_vl(config, "qwen2_vl"), "Qwen2VLDecoderLayer", vision=_QWEN_VL_PARTS),
        Family(
            "qwen2_5_vl",
            lambda config: _qwen_vl(config, "qwen2_5_vl"),
            "Qwen2_5_VLDecoderLayer",
            vision=_QWEN_VL_PARTS,
        ),
        Family("qwen2_moe", _qwen2_moe, "Qwen2MoeDecoderLayer", block_expansion_refused=_MOE_EXPANSION),
        Family("qwen3", _qwen3, "Qwen3DecoderLayer"),
        Family("qwen3_moe", _qwen3_moe, "Qwen3MoeDecoderLayer", block_expansion_refused=_MOE_EXPANSION),
        Family("gemma", _gemma, "GemmaDecoderLayer"),
        Family("gemma3_text", _gemma3_text, "Gemma3DecoderLayer"),
        Family(
            "gemma3",
            _gemma3,
            "Gemma3DecoderLayer",
            vision=VisionParts("model.vision_tower", "model.multi_modal_projector", template="gemma3"),
        ),
        Family(
            "gemma2",
            _gemma2,
            "Gemma2DecoderLayer",
            shift_attention_why_not="soft-caps its attention scores (attn_logit_softcapping), which torch's SDPA "
            "does not compute",
        ),
        Family("phi3", _decoder, "Phi3DecoderLayer", fused_qkv=True, fused_gate_up=True),
        Family(
            "starcoder2",
            _starcoder2,
            "Starcoder2DecoderLayer",
            module_names={"up_proj": "c_fc", "down_proj": "c_proj"},
        ),
        Family("olmo", _olmo, "OlmoDecoderLayer"),
        Family("olmo2", _olmo2, "Olmo2DecoderLayer"),
        Family(
            "falcon",
            _falcon,
            "FalconDecoderLayer",
            fused_qkv=True,
            module_names=_FALCON_STYLE_NAMES,
            shift_attention_why_not=_OWN_ATTENTION_CODE + " (ALiBi biases, or its own call of torch's SDPA)",
        ),
        Family(
            "bloom",
            _bloom,
            "BloomBlock",
            fused_qkv=True,
            module_names=_FALCON_STYLE_NAMES,
            shift_attention_why_not=_OWN_ATTENTION_CODE + " (ALiBi biases added to the scores)",
        ),
        Family(
            "internlm2",
            _internlm2,
            "InternLM2DecoderLayer",
            fused_qkv=True,
            module_names={"qkv_proj": "wqkv", "o_proj": "wo", "gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"},
            block_expansion_refused=_REMOTE_CODE_EXPANSION,
            shift_attention_why_not=_REMOTE_CODE,
        ),
        Family(
            "chatglm",
            _chatglm,
            "GLMBlock",
            fused_qkv=True,
            fused_gate_up=True,
            module_names={
                "qkv_proj": "query_key_value",
                "o_proj": "dense",
                "gate_up_proj": "dense_h_to_4h",
                "down_proj": "dense_4h_to_h",
            },
            block_expansion_refused=_REMOTE_CODE_EXPANSION,
            shift_attention_why_not=_REMOTE_CODE,
        ),
        Family(
            "baichuan",
            _decoder,
            "DecoderLayer",
            fused_qkv=True,
            module_names={"qkv_proj": "W_pack"},
            block_expansion_refused=_REMOTE_CODE_EXPANSION,
            shift_attention_why_not=_REMOTE_CODE,
        ),
    )
}
