"""[llama_pro] in the plan: the model grows by the added blocks, and only they train or carry the adapter."""

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.block_expansion import added_blocks
from ftc.errors import FtcError
from ftc.spec import parse_spec
from tests.specs import VALID, replace

GIB = 1024**3
H100 = parse_hardware("1xH100-80GB")

# Llama-3-8B: hidden 4096, MLP 14336, 32 heads of 128, 8 KV heads, 32 blocks, vocabulary 128256, untied head.
HIDDEN, MLP, KV = 4096, 14336, 8 * 128
BLOCK = (HIDDEN * (HIDDEN + 2 * KV) + HIDDEN * HIDDEN) + 3 * HIDDEN * MLP + 2 * HIDDEN  # attention, MLP, 2 norms
BASE = 32 * BLOCK + 2 * 128256 * HIDDEN + HIDDEN  # blocks, embedding and head, final norm


def plan(method: str, added: int = 8, model: str | None = None, extra: str = ""):
    text = (
        replace(VALID, 'method = "lora"', f'method = "{method}"') + f"\n[llama_pro]\nadded_layers = {added}\n" + extra
    )
    if model:
        text = replace(text, "meta-llama/Meta-Llama-3-8B-Instruct", model)
    spec = parse_spec(text, "job.toml")
    return compile_plan(spec, H100, find_architecture(spec.model.name_or_path))


def test_the_copies_follow_each_group_of_blocks():
    assert added_blocks(32, 8) == (4, 9, 14, 19, 24, 29, 34, 39)  # groups of 4, each with its copy: 5 blocks
    assert added_blocks(2, 2) == (1, 3) and added_blocks(2, 1) == (2,)


def test_llama_3_8b_with_8_added_blocks_has_40_and_trains_only_the_copies_under_freeze():
    assert BLOCK == 218_112_000 and BASE == 8_030_261_248  # the published 8.03B
    added = 8 * BLOCK  # 1_744_896_000
    expanded = plan("freeze")
    note = next(note for note in expanded.notes if note.startswith("LLaMA Pro"))
    assert "32 → 40 decoder blocks" in note and "8.03B → 9.78B" in note and "1.74B parameters" in note
    assert "blocks 4, 9, …, 39" in note
    terms = expanded.memory.terms
    # the copies train in fp32 under bf16 autocast: AdamW's two fp32 moments, an fp32 gradient each
    assert terms["optimizer"] * GIB == pytest.approx(added * 2 * 4)
    assert terms["gradients"] * GIB == pytest.approx(added * 4)
    # weights: the copies in fp32, the base as it was in bf16, and autocast's bf16 copy of the copies' matrices
    matrices = 8 * (BLOCK - 2 * HIDDEN)
    assert terms["weights"] * GIB == pytest.approx(added * 4 + BASE * 2 + matrices * 2)
    # the last two blocks of the base alone (freeze's default) train 2 blocks, the copies 8
    assert terms["optimizer"] == pytest.approx(4 * plan_without("freeze").memory.terms["optimizer"])


def plan_without(method: str):
    spec = parse_spec(replace(VALID, 'method = "lora"', f'method = "{method}"'), "job.toml")
    return compile_plan(spec, H100, find_architecture(spec.model.name_or_path))


def test_under_lora_the_adapter_covers_the_copies_only_and_the_base_grows():
    rank = 8
    per_block = rank * (2 * (HIDDEN + HIDDEN) + 2 * (HIDDEN + KV) + 3 * (HIDDEN + MLP))  # q, o; k, v; gate, up, down
    assert per_block == 655_360
    terms = plan("lora").memory.terms
    assert terms["adapters"] * GIB == pytest.approx(8 * per_block * 4)  # fp32 adapter on 8 of 40 blocks
    assert terms["optimizer"] * GIB == pytest.approx(8 * per_block * 2 * 4)
    base_weights = plan_without("lora").memory.terms["weights"]
    # the copies in bf16; autocast's bf16 copy of the adapter is on 8 blocks, not on the base's 32
    grown = 8 * BLOCK * 2 + (8 - 32) * per_block * 2
    assert (terms["weights"] - base_weights) * GIB == pytest.approx(grown, rel=1e-9)


def test_a_dpo_reference_is_the_base_without_the_copies():
    text = 'format = "preference"'
    spec_text = replace(replace(VALID, 'stage = "sft"', 'stage = "dpo"'), 'format = "alpaca"', text)
    spec_text = replace(spec_text, 'method = "lora"', 'method = "freeze"') + "\n[llama_pro]\nadded_layers = 8\n"
    spec = parse_spec(spec_text, "job.toml")
    found = compile_plan(spec, H100, find_architecture(spec.model.name_or_path))
    assert found.memory.terms["reference_model"] * GIB == pytest.approx(BASE * 2)


def test_a_count_that_does_not_divide_the_blocks_is_refused_at_its_key():
    with pytest.raises(FtcError) as caught:
        plan("freeze", added=5)
    assert caught.value.message.startswith("llama_pro.added_layers = 5 does not divide the base's 32 decoder blocks")
    assert caught.value.hint == "use one of: 1, 2, 4, 8, 16, 32"


def test_mixture_of_experts_families_are_refused_with_the_reason():
    with pytest.raises(FtcError) as caught:
        plan("lora", added=4, model="mistralai/Mixtral-8x7B-v0.1")
    assert caught.value.message.startswith("llama_pro.added_layers: model_type 'mixtral' routes each token to experts")
    assert "llama" in caught.value.hint


def test_a_cpu_plan_without_shapes_leaves_the_check_to_the_run():
    text = replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", "./local") + "\n[llama_pro]\nadded_layers = 3\n"
    spec = parse_spec(text, "job.toml")
    found = compile_plan(spec, parse_hardware("cpu"))
    assert any(note.startswith("llama_pro: the base's blocks are unknown") for note in found.notes)
