"""Which layers LoRA adapts, and which methods the runtime refuses."""

from __future__ import annotations

import pytest

from ftc.errors import RuntimeUserError
from ftc.runtime.model.loading import load_model
from ftc.runtime.model.lora import linear_layer_names, lora_config
from ftc.spec.models import LoraSection, ModelSection
from tests.tiny_runs import cpu_plan

LLAMA_LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return load_model(ModelSection(name_or_path=str(tiny_model_dir)), cpu_plan(), "lora")


def test_all_means_every_linear_layer_but_the_head(tiny_model):
    assert linear_layer_names(tiny_model) == LLAMA_LINEARS
    config = lora_config(LoraSection(rank=4, alpha=8, dropout=0.1, target="all"), tiny_model)
    assert set(config.target_modules) == LLAMA_LINEARS
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.1)


def test_listed_targets_are_checked_against_the_model(tiny_model):
    assert set(lora_config(LoraSection(target=["q_proj", "v_proj"]), tiny_model).target_modules) == {"q_proj", "v_proj"}
    with pytest.raises(RuntimeUserError) as caught:
        lora_config(LoraSection(target=["q_proj", "query"]), tiny_model)
    assert "'query'" in caught.value.message and "q_proj" in caught.value.hint


def test_the_plan_decides_the_dtype(tiny_model_dir):
    import torch

    bf16_plan = cpu_plan("bf16")
    section = ModelSection(name_or_path=str(tiny_model_dir))
    assert load_model(section, bf16_plan, "lora").dtype == torch.bfloat16
    assert load_model(section, bf16_plan, "full").dtype == torch.float32  # fp32 master weights under autocast


def test_pure_bf16_holds_what_trains_in_bf16_as_the_plan_counts(tiny_model_dir):
    import torch

    from ftc.runtime.model.freeze import freeze_all_but
    from ftc.runtime.plan_check import trainable_dtype_mismatch
    from ftc.spec.sections.train import FreezeSection

    plan, section = cpu_plan("bf16"), ModelSection(name_or_path=str(tiny_model_dir))
    full = load_model(section, plan, "full", pure_bf16=True)
    assert {param.dtype for param in full.parameters()} == {torch.bfloat16}
    assert trainable_dtype_mismatch(full, plan, "full", "sft", pure_bf16=True) is None
    assert trainable_dtype_mismatch(full, plan, "full", "sft") is not None  # the default plan counts fp32 weights

    freeze = load_model(section, plan, "freeze", pure_bf16=True)
    freeze_all_but(freeze, FreezeSection(trainable_layers=1), upcast=False)
    trained = [param for param in freeze.parameters() if param.requires_grad]
    assert trained and {param.dtype for param in trained} == {torch.bfloat16}
    assert trainable_dtype_mismatch(freeze, plan, "freeze", "sft", pure_bf16=True) is None
    assert trainable_dtype_mismatch(freeze, plan, "freeze", "sft") is not None


def test_a_missing_model_folder_is_a_user_error(tmp_path):
    from ftc.runtime.model.loading import load_tokenizer

    with pytest.raises(RuntimeUserError, match="not found"):
        load_tokenizer(ModelSection(name_or_path=str(tmp_path / "absent")))


def test_target_names_follow_the_family_as_the_plan_counts_them():
    # Phi-3 fuses q, k, v into qkv_proj and gate, up into gate_up_proj: naming a part adapts the whole.
    from transformers import AutoModelForCausalLM, Phi3Config

    config = Phi3Config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        vocab_size=256, pad_token_id=0,
    )  # fmt: skip
    phi3 = AutoModelForCausalLM.from_config(config)
    chosen = lora_config(LoraSection(target=["q_proj", "v_proj", "up_proj"]), phi3)
    assert sorted(chosen.target_modules) == ["gate_up_proj", "qkv_proj"]
    with pytest.raises(RuntimeUserError):
        lora_config(LoraSection(target=["nonsense"]), phi3)
