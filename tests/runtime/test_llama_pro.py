"""[llama_pro] at run time: identity copies inserted after the base loads; only they train; the result reloads whole.

The tiny Llama has 2 decoder blocks; with 2 added, the copies are blocks 1 and 3 of 4 (block 0 and 2 are the base's).
"""

from __future__ import annotations

import io

import pytest
import torch

from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.runtime.chat import chat
from ftc.runtime.export import export
from ftc.runtime.model.block_expansion import expand_blocks
from tests.tiny_runs import SHORT, tiny_spec

COPIES = (1, 3)
EXPANSION = {"llama_pro": {"added_layers": 2}}


def block_of(name: str) -> int | None:
    """The decoder block a parameter of the (possibly peft-wrapped) model is in; None outside the blocks."""
    parts = name.split(".")
    return int(parts[parts.index("layers") + 1]) if "layers" in parts else None


def load(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def expanded_base(tiny_model_dir):
    model = load(tiny_model_dir)
    assert expand_blocks(model, 2) == COPIES
    return model


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory):
    return write_tiny_alpaca(tmp_path_factory.mktemp("data") / "tiny.json", n=96)


def test_right_after_the_expansion_the_model_computes_what_the_base_computes(tiny_model_dir):
    base, expanded = load(tiny_model_dir), expanded_base(tiny_model_dir)
    ids = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(expanded(ids).logits, base(ids).logits, atol=1e-6, rtol=1e-6)
    assert expanded.config.num_hidden_layers == len(expanded.model.layers) == 4
    # the KV cache is indexed by each attention's layer_idx: a copy keeping its source's would share its cache
    assert [block.self_attn.layer_idx for block in expanded.model.layers] == [0, 1, 2, 3]
    cached = expanded.generate(ids[:1], max_new_tokens=6, do_sample=False, use_cache=True)
    assert torch.equal(cached, expanded.generate(ids[:1], max_new_tokens=6, do_sample=False, use_cache=False))
    for copy in COPIES:
        assert not expanded.model.layers[copy].self_attn.o_proj.weight.any()
        assert not expanded.model.layers[copy].mlp.down_proj.weight.any()
        assert torch.equal(
            expanded.model.layers[copy].mlp.up_proj.weight, base.model.layers[copy // 2].mlp.up_proj.weight
        )


def test_a_count_that_does_not_divide_the_blocks_is_refused_when_the_model_loads(tiny_model_dir):
    with pytest.raises(RuntimeUserError) as caught:
        expand_blocks(load(tiny_model_dir), 3)
    assert "llama_pro.added_layers = 3 does not divide the base's 2 decoder blocks" in caught.value.message


def test_a_mixture_of_experts_model_is_refused_with_the_reason():
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=2, num_experts_per_tok=1,
    )  # fmt: skip
    with pytest.raises(RuntimeUserError, match="model_type 'mixtral' routes each token to experts"):
        expand_blocks(MixtralForCausalLM(config), 2)


# Small configs of families ftc expands, built from code: every block kind the copies must be the identity for
# (sliding-window layer types, post-norms, fused projections, parallel attention, ALiBi).
FAMILY_CONFIGS = {
    "qwen2": {},
    "gemma2": {},
    "phi3": {},
    "starcoder2": {},
    "olmo2": {},
    "falcon": {"head_dim": None},  # a property of its config, not a key
    "bloom": {"n_layer": 4, "n_head": 4},
}


@pytest.mark.parametrize("model_type", sorted(FAMILY_CONFIGS))
def test_the_copies_are_the_identity_in_every_block_layout(model_type):
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 128, "pad_token_id": 0, "bos_token_id": 1,
        "eos_token_id": 2,
    }  # fmt: skip
    given = {key: value for key, value in {**shape, **FAMILY_CONFIGS[model_type]}.items() if value is not None}
    config = AutoConfig.for_model(model_type, **given)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(3, 128, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids).logits
    types = list(getattr(config, "layer_types", None) or [])
    expand_blocks(model, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, before, atol=1e-5, rtol=1e-5)
    cached = model.generate(ids, max_new_tokens=4, do_sample=False, use_cache=True)
    assert torch.equal(cached, model.generate(ids, max_new_tokens=4, do_sample=False, use_cache=False))
    if types:  # each copy takes its source block's attention kind
        assert model.config.layer_types == [types[0], types[1], types[1], types[2], types[3], types[3]]


@pytest.mark.slow
def test_a_freeze_run_trains_the_copies_alone_and_saves_the_expanded_model(
    tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process
):
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, method="freeze", sections=EXPANSION)
    folder = load_run_folder(run_folder(spec))
    metrics = train_in_process(folder.path)
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]

    trained = load(folder.trained)  # reloads on its own: the saved config has the 4 blocks
    assert trained.config.num_hidden_layers == len(trained.model.layers) == 4
    before, after = expanded_base(tiny_model_dir).state_dict(), trained.state_dict()
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert {block_of(name) for name in changed} == set(COPIES)
    # every weight of the copies trained, the zeroed output projections included
    assert changed == {name for name in before if block_of(name) in COPIES}

    merged = export(folder.path, dtype="fp32")
    assert load(merged).config.num_hidden_layers == 4


@pytest.mark.slow
def test_a_lora_run_adapts_the_copies_alone_and_export_and_chat_expand_the_base_again(
    tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process
):
    import json

    from peft import PeftModel

    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, sections=EXPANSION)
    folder = load_run_folder(run_folder(spec))
    metrics = train_in_process(folder.path)
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]

    config = json.loads((folder.trained / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["layers_to_transform"] == list(COPIES)
    adapted = PeftModel.from_pretrained(expanded_base(tiny_model_dir), folder.trained)
    lora = [name for name, _ in adapted.named_parameters() if "lora_" in name]
    assert lora and {block_of(name) for name in lora} == set(COPIES)

    merged = load(export(folder.path, dtype="fp32"))
    assert merged.config.num_hidden_layers == 4
    base = expanded_base(tiny_model_dir).state_dict()
    changed = {name for name, value in merged.state_dict().items() if not torch.equal(value, base[name])}
    assert changed and {block_of(name) for name in changed} == set(COPIES)

    said = io.StringIO()
    assert chat(str(folder.path), lines=["Name a colour.", "/exit"], max_new_tokens=4, out=said) == 0
    assert "assistant>" in said.getvalue()
