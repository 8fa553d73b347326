"""[preference] and [monitor]: ranges, the data format each preference stage needs, keys read by another
stage, and credentials refused; every mistake located at its key with a hint."""

from __future__ import annotations

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace

DPO = replace(replace(VALID, 'stage = "sft"', 'stage = "dpo"'), 'format = "alpaca"', 'format = "preference"')


def only(text: str):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    assert len(caught.value.diagnostics) == 1, [d.format() for d in caught.value.diagnostics]
    return caught.value.diagnostics[0]


def test_preference_and_monitor_have_documented_defaults():
    spec = parse_spec(DPO, "job.toml")
    assert (spec.preference.beta, spec.preference.loss_type, spec.preference.ftx) == (0.1, "sigmoid", 0.0)
    assert (spec.preference.desirable_weight, spec.preference.undesirable_weight) == (1.0, 1.0)
    assert (spec.monitor.report_to, spec.monitor.project, spec.monitor.run_name) == (["tensorboard"], None, None)


def test_a_tuned_dpo_spec_parses():
    text = DPO + '\n[preference]\nbeta = 0.5\nloss_type = "ipo"\nftx = 0.2\n\n[monitor]\nreport_to = ["wandb"]\n'
    spec = parse_spec(text + 'project = "prefs"\n', "job.toml")
    assert (spec.preference.beta, spec.preference.loss_type, spec.preference.ftx) == (0.5, "ipo", 0.2)
    assert (spec.monitor.report_to, spec.monitor.project) == (["wandb"], "prefs")


@pytest.mark.parametrize("stage", ["rm", "dpo", "orpo"])
def test_pair_stages_refuse_sft_data_at_the_datasets_format(stage):
    d = only(replace(VALID, 'stage = "sft"', f'stage = "{stage}"'))
    assert (d.line, d.path, d.code) == (10, "data.datasets[0].format", "E-CONFLICT")  # its [[data.datasets]] table
    assert "chosen, rejected" in d.hint


def test_kto_wants_kto_records():
    d = only(replace(DPO, 'stage = "dpo"', 'stage = "kto"'))
    assert (d.line, d.path, d.code) == (10, "data.datasets[0].format", "E-CONFLICT")
    assert "completion, label" in d.hint
    parse_spec(replace(replace(DPO, 'stage = "dpo"', 'stage = "kto"'), '"preference"', '"kto"'), "job.toml")


def test_a_key_no_stage_reads_here_is_named_with_the_stages_that_do():
    d = only(DPO + "\n[preference]\ndesirable_weight = 2.0\n")
    assert (d.line, d.path, d.code) == (29, "preference.desirable_weight", "E-CONFLICT")
    assert d.message == "preference.desirable_weight is read by kto, not by 'dpo'"
    d = only(VALID + "\n[preference]\nbeta = 0.3\n")  # sft reads no [preference] at all
    assert (d.path, d.code) == ("preference.beta", "E-CONFLICT") and "read by dpo, kto, orpo, not by 'sft'" in d.message
    parse_spec(VALID + "\n[preference]\nbeta = 0.1\n", "job.toml")  # the default value says nothing


def test_ranges_and_names():
    for text, path, code in [
        ("[preference]\nbeta = 0", "preference.beta", "E-RANGE"),
        ("[preference]\nftx = -1.0", "preference.ftx", "E-RANGE"),
        ('[preference]\nloss_type = "sigmod"', "preference.loss_type", "E-ENUM"),
        ('[monitor]\nreport_to = ["neptune"]', "monitor.report_to[0]", "E-ENUM"),
    ]:
        d = only(f"{DPO}\n{text}\n")
        assert (d.line, d.path, d.code) == (29, path, code)
    assert only(DPO + '\n[preference]\nloss_type = "sigmod"\n').hint == "did you mean 'sigmoid'?"


@pytest.mark.parametrize("key", ["api_key", "wandb_token", "WANDB_API_KEY"])
def test_credentials_never_go_in_the_spec(key):
    d = only(DPO + f'\n[monitor]\nreport_to = ["wandb"]\n{key} = "abc123"\n')
    assert (d.line, d.path, d.code) == (30, f"monitor.{key}", "E-SECRET")
    assert "environment" in d.hint and "launch.secrets" in d.hint


def test_kto_refuses_one_example_per_micro_batch_at_that_key():
    kto = replace(replace(DPO, 'stage = "dpo"', 'stage = "kto"'), '"preference"', '"kto"')
    d = only(replace(kto, "global_batch_size = 16", "global_batch_size = 16\nmicro_batch_size = 1"))
    assert (d.line, d.path, d.code) == (16, "train.micro_batch_size", "E-CONFLICT")
    parse_spec(replace(kto, "global_batch_size = 16", "global_batch_size = 16\nmicro_batch_size = 2"), "job.toml")
