"""Parameter counts, checked against published totals and against transformers' own models.

The transformers checks build each model on the meta device (shapes, no memory), so even the
full-size registry entries cost milliseconds; the LoRA checks let peft wrap the same meta models.
"""

import re

import pytest

from ftc.compiler.architectures import ARCHITECTURES, architecture_from_config, find_architecture
from ftc.compiler.params import count_parameters, decoder_linears, lora_parameters, lora_target_modules
from ftc.errors import FtcError

PUBLISHED_TOTALS = {
    "meta-llama/Meta-Llama-3-8B": 8_030_261_248,
    "meta-llama/Llama-2-7b-hf": 6_738_415_616,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "Qwen/Qwen2.5-7B": 7_615_616_512,
    "mistralai/Mixtral-8x7B-v0.1": 46_702_792_704,
    "google/gemma-7b": 8_537_680_896,
    "Qwen/Qwen2.5-0.5B": 494_032_768,
    "meta-llama/Llama-3.2-1B": 1_235_814_400,
    # Remote-code families, which transformers cannot build here; their hub pages show these rounded
    # to 6.24B, 7.51B, 13.9B and 7.74B.
    "THUDM/chatglm3-6b": 6_243_584_000,
    "baichuan-inc/Baichuan2-7B-Base": 7_505_973_248,
    "baichuan-inc/Baichuan2-13B-Base": 13_896_668_160,
    "internlm/internlm2-7b": 7_737_708_544,
}


@pytest.mark.parametrize("hub_id, total", PUBLISHED_TOTALS.items())
def test_published_totals(hub_id, total):
    assert count_parameters(ARCHITECTURES[hub_id].architecture).total == total


def test_breakdown_adds_up_and_layers_hold_the_blocks():
    for model in ARCHITECTURES.values():
        arch = model.architecture
        count = count_parameters(arch)
        per_channel = {"rms": 1, "layer": 2, "parameter_free": 0}[arch.norm]
        outside_blocks = (
            count.embedding + count.head + per_channel * arch.hidden_size * (arch.final_norm + arch.embedding_norm)
        )
        assert sum(count.per_layer) + outside_blocks == count.total, model.hub_id
        assert len(count.per_layer) == arch.num_layers
        assert count.largest_layer == max(count.per_layer)


def test_moe_breakdown_and_active_parameters():
    mixtral = count_parameters(find_architecture("mistralai/Mixtral-8x7B-v0.1"))
    assert mixtral.experts == 32 * 8 * 3 * 4096 * 14336
    assert mixtral.router == 32 * 8 * 4096
    assert mixtral.mlp == 0
    assert mixtral.active == mixtral.total - 32 * 6 * 3 * 4096 * 14336  # 2 of 8 experts per token
    qwen_moe = count_parameters(find_architecture("Qwen/Qwen1.5-MoE-A2.7B"))
    assert qwen_moe.mlp == 24 * 3 * 2048 * 5632  # the shared expert, used by every token
    assert qwen_moe.router == 24 * (60 * 2048 + 2048)  # router plus the shared expert's gate
    assert round(qwen_moe.active / 1e9, 1) == 2.7  # the "A2.7B" in its name
    dense = count_parameters(find_architecture("Qwen/Qwen2.5-7B"))
    assert dense.active == dense.total and dense.experts == dense.router == 0


def test_tied_embeddings_count_once():
    tied = count_parameters(find_architecture("Qwen/Qwen2.5-0.5B"))
    assert tied.head == 0 and tied.embedding == 151936 * 896


def test_lora_all_on_llama_3_8b():
    # rank × (in + out) over q, k, v, o, gate, up, down in 32 blocks: the figure peft prints for this model.
    assert lora_parameters(find_architecture("meta-llama/Meta-Llama-3-8B"), 8, "all") == 20_971_520


def test_lora_targets_on_fused_layers_adapt_the_fused_layer():
    falcon = find_architecture("tiiuae/falcon-7b")
    assert lora_target_modules(falcon, ["q_proj", "v_proj"]) == ("query_key_value",)
    assert lora_target_modules(falcon, "all") == ("dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value")
    phi3 = find_architecture("microsoft/Phi-3-mini-4k-instruct")
    assert lora_target_modules(phi3, ["gate_proj"]) == ("gate_up_proj",)
    chatglm = find_architecture("THUDM/chatglm3-6b")
    assert lora_target_modules(chatglm, ["qkv_proj", "down_proj"]) == ("dense_4h_to_h", "query_key_value")
    internlm2 = find_architecture("internlm/internlm2-7b")
    assert lora_target_modules(internlm2, ["gate_proj", "up_proj"]) == ("w1", "w3")
    assert lora_target_modules(internlm2, ["wqkv"]) == ("wqkv",)  # the family's own names work too
    # One fused layer, counted once however many of its parts are named.
    assert lora_parameters(falcon, 8, ["q_proj", "k_proj", "v_proj"]) == lora_parameters(falcon, 8, "qkv_proj")


def test_unknown_lora_target_is_refused_with_the_choices():
    with pytest.raises(FtcError) as caught:
        lora_parameters(find_architecture("mistralai/Mixtral-8x7B-v0.1"), 8, ["q_proj", "gate_proj"])
    assert "'gate_proj'" in caught.value.message  # Mixtral's experts are not linear layers peft can reach
    assert "q_proj" in caught.value.hint and '"all"' in caught.value.hint


def test_lora_never_touches_the_head_or_embeddings():
    arch = find_architecture("Qwen/Qwen2.5-0.5B")
    names = {linear.name for linear in decoder_linears(arch)}
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


# --- against transformers and peft -------------------------------------------------------------

TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=96,
    vocab_size=100,
    pad_token_id=None,
    bos_token_id=None,
    eos_token_id=None,
)
MOE = dict(num_experts_per_tok=2, moe_intermediate_size=32)

# One small config per structural feature: the same switches as the full-size models, at toy widths.
TINY_CASES = {
    "llama": ("llama", {}),
    "llama-biased-tied": ("llama", dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=True, head_dim=24)),
    "mistral": ("mistral", {}),
    "mixtral": ("mixtral", dict(num_local_experts=4, num_experts_per_tok=2)),
    "qwen2-tied": ("qwen2", dict(tie_word_embeddings=True)),
    "qwen2_moe": ("qwen2_moe", dict(MOE, num_experts=4, shared_expert_intermediate_size=48, num_hidden_layers=3)),
    "qwen2_moe-dense-layers": (
        "qwen2_moe",
        dict(MOE, num_experts=4, shared_expert_intermediate_size=48, num_hidden_layers=4, mlp_only_layers=[0]),
    ),
    "qwen2_moe-sparse-step": (
        "qwen2_moe",
        dict(MOE, num_experts=4, shared_expert_intermediate_size=48, decoder_sparse_step=2, qkv_bias=False),
    ),
    "qwen3": ("qwen3", dict(head_dim=24)),
    "qwen3_moe": ("qwen3_moe", dict(MOE, num_experts=4, head_dim=24)),
    "qwen3_moe-dense-layers": ("qwen3_moe", dict(MOE, num_experts=4, num_hidden_layers=3, mlp_only_layers=[1])),
    "gemma-mqa": ("gemma", dict(head_dim=24, num_key_value_heads=1)),
    "gemma2": ("gemma2", dict(head_dim=24)),
    "phi3": ("phi3", {}),
    "falcon-7b-style": ("falcon", dict(multi_query=True, parallel_attn=True, new_decoder_architecture=False)),
    "falcon-40b-style": ("falcon", dict(new_decoder_architecture=True, num_kv_heads=2, parallel_attn=True)),
    "falcon-sequential-biased": (
        "falcon",
        dict(parallel_attn=False, multi_query=False, bias=True, tie_word_embeddings=False, ffn_hidden_size=80),
    ),
    "bloom": ("bloom", dict(n_layer=2, n_head=4)),
    "starcoder2": ("starcoder2", dict(use_bias=True)),
    "starcoder2-unbiased-untied": ("starcoder2", dict(use_bias=False, tie_word_embeddings=False)),
    "olmo": ("olmo", {}),
    "olmo2": ("olmo2", {}),
}

# peft, for transformers-4 compatibility, retargets gate_proj/up_proj/down_proj on a Qwen3-MoE model to the
# stacked expert tensors, so a dense MLP block there (which no released Qwen3-MoE has) is adapted differently.
LORA_CASES = [case for case in TINY_CASES if case != "qwen3_moe-dense-layers"]

# A partial list as people write it for llama; fused families map it onto their fused layers.
PARTIAL_TARGETS = ("q_proj", "v_proj", "down_proj")


def meta_model(model_type: str, **config):
    """transformers' own model for this config, with shapes but no storage."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    hf_config = transformers.AutoConfig.for_model(model_type, **config)
    with torch.device("meta"):
        return hf_config, transformers.AutoModelForCausalLM.from_config(hf_config)


def numel(parameters) -> int:
    return sum(p.numel() for p in parameters)


def linear_names(model) -> list[str]:
    """What the runtime hands peft for lora.target = "all": every nn.Linear's short name but the head's."""
    from torch import nn

    head = model.get_output_embeddings()
    return sorted(
        {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head}
    )


def lora_added(model, targets: list[str]) -> int:
    from peft import LoraConfig, get_peft_model

    return numel(
        p for p in get_peft_model(model, LoraConfig(r=8, target_modules=targets)).parameters() if p.requires_grad
    )


@pytest.mark.parametrize("case", TINY_CASES)
def test_counts_match_transformers(case):
    model_type, overrides = TINY_CASES[case]
    hf_config, model = meta_model(model_type, **{**TINY, **overrides})
    arch = architecture_from_config(hf_config.to_dict())
    count = count_parameters(arch)
    assert count.total == numel(model.parameters())  # parameters() yields a tied weight once

    by_layer: dict[int, int] = {}
    for name, parameter in model.named_parameters():
        if match := re.search(r"\.(?:layers|h)\.(\d+)\.", name):
            by_layer[int(match[1])] = by_layer.get(int(match[1]), 0) + parameter.numel()
    assert count.per_layer == tuple(by_layer[i] for i in range(arch.num_layers))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft asks transformers a deprecated question
@pytest.mark.parametrize("case", LORA_CASES)
def test_lora_counts_match_peft(case):
    pytest.importorskip("peft")
    model_type, overrides = TINY_CASES[case]
    hf_config, model = meta_model(model_type, **{**TINY, **overrides})
    arch = architecture_from_config(hf_config.to_dict())
    assert list(lora_target_modules(arch, "all")) == linear_names(model)
    assert lora_added(model, linear_names(model)) == lora_parameters(arch, 8, "all")

    present = set().union(*(linear.answers_to for linear in decoder_linears(arch)))
    partial = [name for name in PARTIAL_TARGETS if name in present]  # Mixtral has no MLP outside its experts
    _, fresh = meta_model(model_type, **{**TINY, **overrides})
    assert lora_added(fresh, list(lora_target_modules(arch, partial))) == lora_parameters(arch, 8, partial)


BUILT_IN = [
    hub_id
    for hub_id, model in ARCHITECTURES.items()
    if model.config["model_type"] not in {"chatglm", "internlm2", "baichuan"}
]


@pytest.mark.parametrize("hub_id", BUILT_IN)
def test_registry_entries_match_transformers_at_full_size(hub_id):
    config = dict(ARCHITECTURES[hub_id].config)
    hf_config, model = meta_model(config.pop("model_type"), **config)
    arch = ARCHITECTURES[hub_id].architecture
    # The published keys alone and transformers' full config (its defaults filled in) read the same.
    assert architecture_from_config(hf_config.to_dict()) == arch
    assert count_parameters(arch).total == numel(model.parameters())
