"""Rules between the method, the stage and the data that the spec refuses before anything runs."""

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace


def refusal(text: str) -> tuple[int, str, str]:
    """Where the one problem found is, and its code."""
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    (diagnostic,) = caught.value.diagnostics
    return diagnostic.line, diagnostic.path, diagnostic.code


def test_packing_is_for_pt_and_sft():
    parse_spec(replace(VALID, "cutoff_len = 1024", "cutoff_len = 1024\npacking = true"), "job.toml")
    text = replace(VALID, "cutoff_len = 1024", "cutoff_len = 1024\npacking = true")
    text = replace(text, 'format = "alpaca"', 'format = "preference"')
    assert refusal(replace(text, 'stage = "sft"', 'stage = "dpo"')) == (7, "data.packing", "E-CONFLICT")


def test_packing_streams_and_streaming_is_for_pt_and_sft():
    streamed = "cutoff_len = 1024\npacking = true\nstreaming = true"
    text = replace(VALID, "cutoff_len = 1024", streamed)  # VALID sets train.max_steps, which streaming needs
    assert parse_spec(text, "job.toml").data.packing
    dpo = replace(replace(text, "packing = true\n", ""), 'format = "alpaca"', 'format = "preference"')
    assert refusal(replace(dpo, 'stage = "sft"', 'stage = "dpo"')) == (7, "data.streaming", "E-CONFLICT")


def test_a_freeze_section_needs_the_freeze_method():
    assert refusal(VALID + "\n[freeze]\ntrainable_layers = 4\n") == (28, "freeze", "E-CONFLICT")
    parse_spec(replace(VALID, 'method = "lora"', 'method = "freeze"') + "\n[freeze]\ntrainable_layers = 4\n", "j")


def test_freeze_must_train_something():
    text = replace(VALID, 'method = "lora"', 'method = "freeze"') + "\n[freeze]\ntrainable_layers = 0\n"
    assert refusal(text) == (28, "freeze", "E-CONFLICT")


def test_pissa_needs_full_precision_weights():
    text = replace(VALID, 'target = "all"', 'target = "all"\ninit = "pissa"')
    parse_spec(text, "job.toml")
    assert refusal(replace(text, 'method = "lora"', 'method = "qlora"')) == (24, "lora.init", "E-CONFLICT")


def test_lora_plus_ratio_is_at_least_one():
    text = replace(VALID, 'target = "all"', 'target = "all"\nplus_lr_ratio = 0.5')
    assert refusal(text) == (24, "lora.plus_lr_ratio", "E-RANGE")


def test_loftq_is_for_a_4bit_qlora_base():
    loftq = replace(VALID, 'target = "all"', 'target = "all"\ninit = "loftq"')
    assert refusal(loftq) == (24, "lora.init", "E-CONFLICT")
    qlora = replace(loftq, 'method = "lora"', 'method = "qlora"')
    parse_spec(qlora, "job.toml")  # bits left to the plan
    parse_spec(qlora + "\n[quantization]\nbits = 4\n", "job.toml")
    assert refusal(qlora + "\n[quantization]\nbits = 8\n") == (24, "lora.init", "E-CONFLICT")


def test_a_stage_refuses_a_method_its_record_leaves_out_before_anything_runs():
    rm = replace(replace(VALID, 'stage = "sft"', 'stage = "rm"'), 'format = "alpaca"', 'format = "preference"')
    parse_spec(rm, "job.toml")  # rm with lora
    line, path, code = refusal(replace(rm, 'method = "lora"', 'method = "freeze"'))
    assert (path, code) == ("train.method", "E-CONFLICT")
    with pytest.raises(SpecError) as caught:
        parse_spec(replace(rm, 'method = "lora"', 'method = "freeze"'), "job.toml")
    assert caught.value.diagnostics[0].hint == "use one of: full, lora"  # the new score head must train


# -- oft ----------------------------------------------------------------------------------------------
OFT = replace(replace(VALID, 'method = "lora"', 'method = "oft"'), '[lora]\nrank = 8\nalpha = 16\ntarget = "all"\n', "")


def test_an_oft_spec_takes_its_own_section():
    spec = parse_spec(OFT + "\n[oft]\nblock_size = 16\ntarget = ['q_proj', 'v_proj']\n", "job.toml")
    assert spec.oft.size == (16, 0) and spec.adapter_section is spec.oft
    assert parse_spec(OFT, "job.toml").oft.size == (32, 0)  # peft's default block size
    assert parse_spec(OFT + "\n[oft]\nrank = 4\n", "job.toml").oft.size == (0, 4)


def test_oft_section_with_another_method_is_refused_at_the_section():
    for method in ("lora", "full", "freeze"):
        text = replace(VALID, 'method = "lora"', f'method = "{method}"') + "\n[oft]\nblock_size = 16\n"
        assert refusal(text)[1:] == ("oft", "E-CONFLICT"), method


def test_lora_section_with_oft_is_refused_but_stays_allowed_beside_full():
    assert refusal(OFT + "\n[lora]\nrank = 4\n")[1:] == ("lora", "E-CONFLICT")
    parse_spec(replace(VALID, 'method = "lora"', 'method = "full"'), "job.toml")  # as it always was


def test_oft_keys_are_checked_at_their_keys():
    assert refusal(OFT + "\n[oft]\nblock_size = 1\n")[1:] == ("oft.block_size", "E-RANGE")
    assert refusal(OFT + "\n[oft]\nblock_size = 16\nrank = 4\n")[1:] == ("oft.rank", "E-CONFLICT")
    assert refusal(OFT + "\n[oft]\neps = 0.01\n")[1:] == ("oft.eps", "E-CONFLICT")  # eps acts only with coft
    parse_spec(OFT + "\n[oft]\ncoft = true\neps = 0.01\n", "job.toml")
    assert refusal(OFT + "\n[oft]\ncayley_neumann = false\nneumann_terms = 8\n")[1:] == (
        "oft.neumann_terms",
        "E-CONFLICT",
    )
    assert refusal(OFT + "\n[oft]\ndropout = 0.1\n")[1] == "oft.dropout"  # peft builds it but never applies it


def test_oft_trains_a_new_adapter_and_does_not_run_the_rm_stage():
    with_adapter = replace(OFT, 'template = "llama3"', 'template = "llama3"\nadapter = "runs/earlier/adapter"')
    assert refusal(with_adapter)[1:] == ("model.adapter", "E-CONFLICT")
    rm = replace(replace(OFT, 'stage = "sft"', 'stage = "rm"'), 'format = "alpaca"', 'format = "preference"')
    assert refusal(rm)[1:] == ("train.method", "E-CONFLICT")
