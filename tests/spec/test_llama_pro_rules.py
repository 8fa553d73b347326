"""[llama_pro]: the methods, stages and keys that would train something other than the added blocks are refused."""

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, as_dpo, replace

EXPANDED = VALID + "\n[llama_pro]\nadded_layers = 8\n"
FREEZE = replace(EXPANDED, 'method = "lora"', 'method = "freeze"')


def refused(text: str):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    (diagnostic,) = caught.value.diagnostics
    return diagnostic


def test_freeze_and_lora_take_it_on_any_stage_but_rm():
    assert parse_spec(EXPANDED, "job.toml").llama_pro.added_layers == 8
    assert parse_spec(FREEZE, "job.toml").freeze.trainable_layers is None
    parse_spec(as_dpo(FREEZE), "job.toml")


@pytest.mark.parametrize("method", ["full", "qlora"])
def test_full_and_qlora_are_refused_at_the_key_with_the_reason(method):
    diagnostic = refused(replace(EXPANDED, 'method = "lora"', f'method = "{method}"'))
    assert (diagnostic.path, diagnostic.code) == ("llama_pro.added_layers", "E-CONFLICT")
    reason = "trains every weight" if method == "full" else "quantizes the base as it loads"
    assert reason in diagnostic.message
    assert "'freeze' or 'lora'" in diagnostic.hint


def test_a_reward_model_is_refused_since_ppo_loads_it_on_the_unexpanded_base():
    text = replace(replace(EXPANDED, 'stage = "sft"', 'stage = "rm"'), 'format = "alpaca"', 'format = "preference"')
    diagnostic = refused(text)
    assert diagnostic.path == "llama_pro.added_layers" and "lacks the added blocks" in diagnostic.message


def test_freeze_trainable_layers_contradicts_the_added_blocks_but_the_other_freeze_keys_apply():
    diagnostic = refused(FREEZE + "\n[freeze]\ntrainable_layers = 2\n")
    assert (diagnostic.path, diagnostic.code) == ("freeze.trainable_layers", "E-CONFLICT")
    spec = parse_spec(FREEZE + '\n[freeze]\ntrainable_modules = ["mlp"]\nextra_modules = ["norm"]\n', "job.toml")
    assert spec.freeze.trainable_modules == ["mlp"] and spec.freeze.top_layers == 2


def test_an_adapter_to_train_further_is_numbered_for_the_unexpanded_base():
    text = replace(EXPANDED, 'template = "llama3"', 'template = "llama3"\nadapter = "runs/old/adapter"')
    assert refused(text).path == "model.adapter"
    # freeze merges it into the base before the expansion
    parse_spec(replace(text, 'method = "lora"', 'method = "freeze"'), "job.toml")


def test_added_layers_is_at_least_one():
    assert refused(replace(EXPANDED, "added_layers = 8", "added_layers = 0")).code == "E-RANGE"
