"""train.pure_bf16: refused, at its key and with the reason, where it would hold nothing in bf16 or another
library would keep an fp32 copy anyway."""

from __future__ import annotations

import pytest

from ftc.spec import parse_spec
from tests.spec.test_optimizer_rules import FULL
from tests.specs import VALID, refusal, replace


def _pure(text: str, extra: str = "") -> str:
    return replace(text, "seed = 42", f"seed = 42\npure_bf16 = true{extra}")


def test_full_and_freeze_take_it():
    assert parse_spec(_pure(FULL), "job.toml").train.pure_bf16
    freeze = replace(FULL, 'method = "full"', 'method = "freeze"')
    assert parse_spec(_pure(freeze, '\nprecision = "bf16"'), "job.toml").train.pure_bf16


def test_an_adapter_method_is_refused_at_the_key():
    found = refusal(_pure(VALID))
    assert (found.path, found.code) == ("train.pure_bf16", "E-CONFLICT")
    assert "train.method = 'lora' trains no base weights" in found.message
    assert "'full' or 'freeze'" in found.hint


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_a_precision_other_than_bf16_is_refused(precision):
    found = refusal(_pure(FULL, f'\nprecision = "{precision}"'))
    assert (found.path, found.code) == ("train.pure_bf16", "E-CONFLICT")
    assert f"train.precision = '{precision}'" in found.message


@pytest.mark.parametrize("strategy", ["zero1", "zero2", "zero3", "fsdp"])
def test_sharding_with_its_own_master_copy_is_refused(strategy):
    found = refusal(_pure(FULL, f'\nstrategy = "{strategy}"'))
    assert (found.path, found.code) == ("train.pure_bf16", "E-CONFLICT")
    assert f"train.strategy = '{strategy}'" in found.message and "own fp32 master copy" in found.message
