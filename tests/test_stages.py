"""The stage records (ftc.stages) agree with the spec language, the data formats and the runtime
(tests/test_stage_names.py: nothing else in ftc decides by a stage's name)."""

from __future__ import annotations

import importlib.util
import typing

import pytest
from pydantic import TypeAdapter, ValidationError

from ftc.methods import METHODS
from ftc.records.formats import Kind, formats_of
from ftc.spec.models import PpoSection, PreferenceSection, Spec, Stage
from ftc.stages import STAGES, DataKind, stages_reading

SECTIONS = {"preference": PreferenceSection, "ppo": PpoSection}


def test_the_spec_language_takes_exactly_the_registrys_stages_in_its_order():
    # train.stage's values, its E-ENUM message and the JSON Schema list them in this order
    assert typing.get_args(Stage) == tuple(STAGES)
    schema = Spec.model_json_schema()
    stage_schema = schema["$defs"][schema["properties"]["train"]["$ref"].rsplit("/", 1)[-1]]["properties"]["stage"]
    assert stage_schema["enum"] == list(STAGES)
    with pytest.raises(ValidationError):
        TypeAdapter(Stage).validate_python("sftt")


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_is_run_by_its_own_runtime_module(name):
    record = STAGES[name]
    assert record.name == name and record.summary
    assert record.module == f"ftc.runtime.stages.{name}"
    assert importlib.util.find_spec(record.module) is not None


@pytest.mark.parametrize("name", STAGES)
def test_a_stage_reads_every_format_of_its_kind_and_no_other(name):
    record = STAGES[name]
    assert record.formats == tuple(formats_of(record.data))


def test_the_data_kinds_are_the_formats_kinds():
    assert set(typing.get_args(DataKind)) == set(typing.get_args(Kind))


@pytest.mark.parametrize("name", STAGES)
def test_what_a_stage_reads_is_a_key_of_its_section(name):
    for key in STAGES[name].reads:
        section, _, field = key.partition(".")
        assert field in SECTIONS[section].model_fields, key


@pytest.mark.parametrize(("section", "model"), SECTIONS.items())
def test_every_key_of_a_stage_section_is_read_by_some_stage(section, model):
    for field in model.model_fields:
        assert stages_reading(f"{section}.{field}"), f"{section}.{field} is read by no stage"


def test_the_records_hold_together():
    for record in STAGES.values():
        assert set(record.methods) <= set(METHODS), record.name
        assert (record.least_micro_batch > 1) == bool(record.least_micro_batch_why), record.name
        # a rollout stage scores its replies and reads [ppo]; the others do neither
        assert (record.samples is not None) == (record.reward_model is not None) == ("ppo" in record.sections)
        assert not (record.paired and not record.judged), record.name  # pairs are judged replies
        # a trainer's own path from the full logits replaces the model's loss, never trl's chunked head
        assert not record.logit_bytes or record.loss_heads == ("model",), record.name


def test_readers_come_in_registry_order():
    assert stages_reading("preference.beta") == ("dpo", "kto", "orpo", "cpo")
    assert stages_reading("ppo.kl_coef") == ("ppo", "grpo")
    assert stages_reading("ppo.gamma") == ("ppo",)


def test_the_loss_types_are_the_records_and_read_where_the_key_is():
    # preference.loss_type takes every stage's loss types, each once, in the records' order
    offered = [loss for record in STAGES.values() for loss in record.loss_types]
    assert typing.get_args(PreferenceSection.model_fields["loss_type"].annotation) == tuple(dict.fromkeys(offered))
    for record in STAGES.values():
        assert bool(record.loss_types) == ("preference.loss_type" in record.reads), record.name
        assert len(set(record.loss_types)) == len(record.loss_types), record.name
        # the key's default is a loss every stage that reads it runs
        assert not record.loss_types or PreferenceSection.model_fields["loss_type"].default in record.loss_types
