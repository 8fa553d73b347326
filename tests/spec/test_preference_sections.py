"""[preference] and [monitor]: ranges, the data format each preference stage needs, keys read by another
stage, and credentials refused; every mistake located at its key with a hint."""

from __future__ import annotations

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace

DPO = replace(replace(VALID, 'stage = "sft"', 'stage = "dpo"'), 'format = "alpaca"', 'format = "preference"')
CPO = replace(DPO, 'stage = "dpo"', 'stage = "cpo"')


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


@pytest.mark.parametrize("stage", ["rm", "dpo", "orpo", "cpo"])
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
    assert (d.path, d.code) == (
        "preference.beta",
        "E-CONFLICT",
    ) and "read by dpo, kto, orpo, cpo, not by 'sft'" in d.message
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


# -- cpo: CPO and SimPO --------------------------------------------------------------------------------
def test_cpo_is_cpo_by_default_and_simpo_drops_the_nll_unless_asked():
    spec = parse_spec(CPO, "job.toml")
    assert (spec.preference.loss_type, spec.preference.cpo_alpha, spec.preference.nll_weight) == ("sigmoid", None, 1.0)
    simpo = parse_spec(CPO + '\n[preference]\nloss_type = "simpo"\nbeta = 2.0\nsimpo_gamma = 1.0\n', "job.toml")
    assert (simpo.preference.simpo_gamma, simpo.preference.nll_weight) == (1.0, 0.0)
    cpo_simpo = parse_spec(CPO + '\n[preference]\nloss_type = "simpo"\ncpo_alpha = 0.05\n', "job.toml")
    assert cpo_simpo.preference.nll_weight == 0.05
    for loss in ("hinge", "ipo"):
        assert parse_spec(CPO + f'\n[preference]\nloss_type = "{loss}"\n', "job.toml").preference.nll_weight == 1.0


def test_a_loss_the_stage_does_not_run_is_refused_with_the_stage_that_does():
    # LLaMA-Factory runs SimPO as a dpo loss; here it has no reference model, so it is cpo's
    d = only(DPO + '\n[preference]\nloss_type = "simpo"\n')
    assert (d.line, d.path, d.code) == (29, "preference.loss_type", "E-CONFLICT")
    assert d.message == "preference.loss_type = 'simpo' is not a loss train.stage = 'dpo' runs"
    assert d.hint.startswith("one of: sigmoid, hinge, ipo, robust,") and d.hint.endswith(
        "set train.stage = 'cpo', which runs it"
    )
    d = only(CPO + '\n[preference]\nloss_type = "robust"\n')
    assert (
        d.path == "preference.loss_type"
        and d.hint == "one of: sigmoid, hinge, ipo, simpo; or set train.stage = 'dpo', which runs it"
    )


def test_simpo_gamma_is_refused_where_no_simpo_loss_reads_it():
    # trl reads simpo_gamma under loss_type simpo alone: under CPO's sigmoid it would be dropped unseen
    d = only(CPO + "\n[preference]\nsimpo_gamma = 1.0\n")
    assert (d.line, d.path, d.code) == (29, "preference.simpo_gamma", "E-CONFLICT")
    assert d.message == "preference.simpo_gamma is read with loss_type = 'simpo', not 'sigmoid'"
    assert d.hint == "remove it, or set preference.loss_type = 'simpo'"
    d = only(DPO + "\n[preference]\nsimpo_gamma = 1.0\n")  # a stage that reads no simpo_gamma: said as such
    assert d.message == "preference.simpo_gamma is read by cpo, not by 'dpo'"
    parse_spec(CPO + "\n[preference]\nsimpo_gamma = 0.5\n", "job.toml")  # the default value says nothing


@pytest.mark.parametrize(
    ("stage", "key"), [("cpo", "ftx"), ("orpo", "cpo_alpha"), ("dpo", "cpo_alpha"), ("kto", "cpo_alpha")]
)
def test_keys_of_the_other_preference_stages_are_refused_at_their_place(stage, key):
    text = replace(CPO, 'stage = "cpo"', f'stage = "{stage}"')
    text = replace(text, '"preference"', '"kto"') if stage == "kto" else text
    d = only(text + f"\n[preference]\n{key} = 0.5\n")
    assert (d.line, d.path, d.code) == (29, f"preference.{key}", "E-CONFLICT")
    assert d.message.startswith(f"preference.{key} is read by ")


def test_cpo_ranges():
    for text, path in [("cpo_alpha = -0.1", "preference.cpo_alpha"), ("simpo_gamma = -1.0", "preference.simpo_gamma")]:
        d = only(f'{CPO}\n[preference]\nloss_type = "simpo"\n{text}\n')
        assert (d.path, d.code) == (path, "E-RANGE")


@pytest.mark.parametrize(
    ("stage", "keys", "path"),
    [
        ("orpo", ("cutoff_len = 1024", "cutoff_len = 1024\nimage_max_pixels = 1003520"), "data.image_max_pixels"),
        ("cpo", ("cutoff_len = 1024", 'cutoff_len = 1024\nmedia_dir = "pictures"'), "data.media_dir"),
        ("rm", ("[output]", "[vision]\nfreeze_tower = false\n\n[output]"), "vision.freeze_tower"),
    ],
)
def test_image_keys_are_refused_for_a_stage_that_cannot_train_on_images_with_its_reason(stage, keys, path):
    from ftc.stages import STAGES

    d = only(replace(replace(DPO, 'stage = "dpo"', f'stage = "{stage}"'), *keys))
    assert (d.path, d.code) == (path, "E-CONFLICT")
    assert f"train.stage = {stage!r} cannot train on images: {STAGES[stage].no_images_why}" in d.message
    assert d.hint == f"remove {path}, or train on the images with train.stage = 'sft' or 'dpo' or 'kto'"
    parse_spec(replace(DPO, *keys), "job.toml")  # dpo takes them


@pytest.mark.parametrize("stage", ["orpo", "cpo", "rm"])
def test_a_resolved_spec_with_every_default_written_is_not_taken_for_image_keys(stage):
    """A run folder's spec.toml writes [vision]'s defaults too: only a value other than its default is refused."""
    import tomli_w

    spec = parse_spec(replace(DPO, 'stage = "dpo"', f'stage = "{stage}"'), "job.toml")
    resolved = tomli_w.dumps(spec.model_dump(mode="json", exclude_none=True))
    assert "[vision]" in resolved and "freeze_projector = false" in resolved
    assert parse_spec(resolved, "spec.toml") == spec
