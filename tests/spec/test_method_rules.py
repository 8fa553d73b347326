"""Rules between the method, the stage and the data that the spec refuses before anything runs."""

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace


def refusal(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    return str(caught.value)


def test_packing_is_for_pt_and_sft():
    parse_spec(replace(VALID, "cutoff_len = 1024", "cutoff_len = 1024\npacking = true"), "job.toml")
    text = replace(VALID, "cutoff_len = 1024", "cutoff_len = 1024\npacking = true")
    text = replace(text, 'format = "alpaca"', 'format = "preference"')
    message = refusal(replace(text, 'stage = "sft"', 'stage = "dpo"'))
    assert "data.packing" in message and "not 'dpo'" in message


def test_packing_streams_and_streaming_is_for_pt_and_sft():
    streamed = "cutoff_len = 1024\npacking = true\nstreaming = true"
    text = replace(VALID, "cutoff_len = 1024", streamed)  # VALID sets train.max_steps, which streaming needs
    assert parse_spec(text, "job.toml").data.packing
    dpo = replace(replace(text, "packing = true\n", ""), 'format = "alpaca"', 'format = "preference"')
    message = refusal(replace(dpo, 'stage = "sft"', 'stage = "dpo"'))
    assert "data.streaming" in message and "loads its preference records first" in message


def test_a_freeze_section_needs_the_freeze_method():
    message = refusal(VALID + "\n[freeze]\ntrainable_layers = 4\n")
    assert "[freeze] is set but train.method is 'lora'" in message
    parse_spec(replace(VALID, 'method = "lora"', 'method = "freeze"') + "\n[freeze]\ntrainable_layers = 4\n", "j")


def test_freeze_must_train_something():
    text = replace(VALID, 'method = "lora"', 'method = "freeze"') + "\n[freeze]\ntrainable_layers = 0\n"
    assert "nothing would train" in refusal(text)


def test_pissa_needs_full_precision_weights():
    text = replace(VALID, 'target = "all"', 'target = "all"\ninit = "pissa"')
    parse_spec(text, "job.toml")
    message = refusal(replace(text, 'method = "lora"', 'method = "qlora"'))
    assert "lora.init" in message and "method = 'lora'" in message


def test_lora_plus_ratio_is_at_least_one():
    message = refusal(replace(VALID, 'target = "all"', 'target = "all"\nplus_lr_ratio = 0.5'))
    assert "lora.plus_lr_ratio" in message


def test_loftq_is_for_a_4bit_qlora_base():
    loftq = replace(VALID, 'target = "all"', 'target = "all"\ninit = "loftq"')
    assert "lora.init" in refusal(loftq) and "train.method is 'lora'" in refusal(loftq)
    qlora = replace(loftq, 'method = "lora"', 'method = "qlora"')
    parse_spec(qlora, "job.toml")  # bits left to the plan
    parse_spec(qlora + "\n[quantization]\nbits = 4\n", "job.toml")
    assert "quantization.bits is 8" in refusal(qlora + "\n[quantization]\nbits = 8\n")
