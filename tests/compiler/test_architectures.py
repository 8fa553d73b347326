import json

import pytest

from ftc.compiler.architectures import ARCHITECTURES, architecture_from_config, find_architecture, repository_key
from ftc.compiler.model_families import FAMILIES
from ftc.errors import FtcError


@pytest.mark.parametrize(
    "name, base",
    [
        ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B"),
        ("META-LLAMA/meta-llama-3-8b-instruct", "meta-llama/Meta-Llama-3-8B"),
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"),
        ("meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.1-70B"),
        ("meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-hf"),
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"),
        ("qwen/qwen2.5-0.5b-instruct/", "Qwen/Qwen2.5-0.5B"),
        ("Qwen/Qwen1.5-MoE-A2.7B-Chat", "Qwen/Qwen1.5-MoE-A2.7B"),
        ("Qwen/Qwen3-8B-Base", "Qwen/Qwen3-8B"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistralai/Mistral-7B-v0.1"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistralai/Mixtral-8x7B-v0.1"),
        ("google/gemma-7b-it", "google/gemma-7b"),
        ("google/gemma-2-9b-it", "google/gemma-2-9b"),
        ("microsoft/Phi-3.5-mini-instruct", "microsoft/Phi-3-mini-128k-instruct"),
        ("01-ai/Yi-34B-Chat", "01-ai/Yi-34B"),
        ("internlm/internlm2-chat-7b", "internlm/internlm2-7b"),
        ("zai-org/chatglm3-6b", "THUDM/chatglm3-6b"),  # the org renamed itself; the repository name decides
        ("bigscience/bloomz-7b1", "bigscience/bloom-7b1"),
        ("/models/hub/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B"),  # a local copy named like its repo
    ],
)
def test_hub_ids_resolve_to_their_base_model(name, base):
    assert find_architecture(name) == ARCHITECTURES[base].architecture


def test_sizes_and_versions_do_not_blur():
    assert find_architecture("meta-llama/Llama-3.2-1B") != find_architecture("meta-llama/Llama-3.2-3B")
    assert find_architecture("google/gemma-2b") != find_architecture("google/gemma-2-2b")
    assert find_architecture("mistralai/Mistral-7B-v0.3").vocab_size == 32768
    assert find_architecture("mistralai/Mistral-7B-v0.1").vocab_size == 32000


@pytest.mark.parametrize(
    "name",
    ["", "gpt2", "someone/my-finetune", "Qwen/Qwen2.5-7B-Instruct-AWQ", "meta-llama/Meta-Llama-3-8B-GGUF", "llama-3"],
)
def test_unknown_or_repackaged_models_are_not_guessed(name):
    assert find_architecture(name) is None


def test_no_two_registry_names_collide():
    names = [name for model in ARCHITECTURES.values() for name in (model.hub_id, *model.also)]
    assert len({repository_key(name) for name in names}) == len(names)


def test_every_registry_record_reads_through_a_known_family():
    for model in ARCHITECTURES.values():
        arch = model.architecture
        assert arch.model_type in FAMILIES
        assert arch.num_attention_heads % arch.num_key_value_heads == 0, model.hub_id


def test_registry_records_keep_the_published_shape_facts():
    llama = find_architecture("meta-llama/Llama-3.2-1B")
    assert (llama.head_dim, llama.num_key_value_heads, llama.tied_embeddings) == (64, 8, True)
    gemma = find_architecture("google/gemma-7b")
    assert gemma.head_dim * gemma.num_attention_heads == 4096 != gemma.hidden_size
    qwen = find_architecture("Qwen/Qwen2.5-7B")
    assert (qwen.attention_bias, qwen.tied_embeddings) == ("qkv", False)
    assert find_architecture("Qwen/Qwen3-8B").qk_norm == "per_head"
    mixtral = find_architecture("mistralai/Mixtral-8x7B-v0.1")
    assert (mixtral.moe.num_experts, mixtral.moe.experts_per_token) == (8, 2)
    falcon = find_architecture("tiiuae/falcon-7b")
    assert (falcon.num_key_value_heads, falcon.norms_per_layer, falcon.mlp) == (1, 1, "plain")
    bloom = find_architecture("bigscience/bloom-7b1")
    assert bloom.embedding_norm and bloom.norm == "layer" and bloom.max_position_embeddings is None
    chatglm = find_architecture("THUDM/chatglm3-6b")
    assert (chatglm.num_key_value_heads, chatglm.attention_bias, chatglm.vocab_size) == (2, "qkv", 65024)


def test_unknown_model_type_says_which_keys_describe_a_model():
    with pytest.raises(FtcError) as caught:
        architecture_from_config({"model_type": "mamba", "hidden_size": 768})
    assert "mamba" in caught.value.message
    assert "llama" in caught.value.hint and "num_key_value_heads" in caught.value.hint
    assert "qwen2_moe" in caught.value.hint  # the known model types are listed


def test_config_without_model_type_is_refused():
    with pytest.raises(FtcError, match="no model_type"):
        architecture_from_config({"hidden_size": 768})


def test_missing_key_is_named():
    with pytest.raises(FtcError) as caught:
        architecture_from_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4})
    assert "num_hidden_layers" in caught.value.message


def test_older_configs_fall_back_to_the_defaults_transformers_uses():
    minimal = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 96,
        "vocab_size": 100,
    }
    arch = architecture_from_config(minimal)
    assert (arch.num_key_value_heads, arch.head_dim, arch.tied_embeddings) == (4, 16, False)
    assert architecture_from_config({**minimal, "model_type": "gemma"}).tied_embeddings is True
    assert architecture_from_config({**minimal, "model_type": "Yi"}) == architecture_from_config(
        {**minimal, "model_type": "yi"}
    )


def test_qwen_moe_dense_layers_follow_the_sparse_step_and_the_list():
    config = {
        "model_type": "qwen2_moe",
        "hidden_size": 64,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "intermediate_size": 96,
        "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 48,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "vocab_size": 100,
        "decoder_sparse_step": 2,
        "mlp_only_layers": [3],
    }
    arch = architecture_from_config(config)
    assert arch.moe.dense_layers == (0, 2, 3, 4)
    assert [arch.is_sparse(i) for i in range(6)] == [False, True, False, False, False, True]


_MINIMAL_LLAMA = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 96,
    "vocab_size": 100,
}


@pytest.mark.parametrize(
    ("key", "value", "expected", "found"),
    [
        ("hidden_size", "big", "a positive integer", "found 'big' (a string)"),
        ("num_hidden_layers", True, "a positive integer", "found True (a boolean)"),
        ("num_attention_heads", 4.0, "a positive integer", "found 4.0 (a number)"),
        ("vocab_size", 0, "a positive integer", "found 0 (an integer)"),
        ("tie_word_embeddings", "yes", "true or false", "found 'yes' (a string)"),
        ("max_position_embeddings", [4096], "a positive integer", "found [4096] (a list)"),
    ],
)
def test_a_shape_key_of_the_wrong_type_names_the_file_key_type_and_value(key, value, expected, found):
    with pytest.raises(FtcError) as caught:
        architecture_from_config({**_MINIMAL_LLAMA, key: value}, source="model/config.json")
    assert caught.value.message == f"model/config.json: '{key}' must be {expected}, {found}"


def test_the_moe_keys_are_typed_too():
    config = {**_MINIMAL_LLAMA, "model_type": "qwen2_moe", "moe_intermediate_size": 32}
    config |= {"shared_expert_intermediate_size": 48, "num_experts": 4, "num_experts_per_tok": 2}
    assert architecture_from_config(config).moe.num_experts == 4
    with pytest.raises(FtcError, match=r"'mlp_only_layers' must be a list of layer indices, found \['3'\]"):
        architecture_from_config({**config, "mlp_only_layers": ["3"]})


def test_a_local_config_json_is_named_by_its_path(tmp_path):
    from ftc.models.lookup import architecture_for
    from ftc.spec import parse_spec
    from tests.specs import VALID, replace

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({**_MINIMAL_LLAMA, "hidden_size": "big"}))
    spec = parse_spec(replace(VALID, '"meta-llama/Meta-Llama-3-8B-Instruct"', '"model"'), "job.toml")
    with pytest.raises(FtcError) as caught:
        architecture_for(spec, tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / 'model' / 'config.json'}: 'hidden_size' must be")
    assert "num_attention_heads" not in caught.value.message  # the misleading old complaint
