"""The method records (ftc.methods) agree with the spec language (tests/test_stage_names.py: nothing else
in ftc decides by a method's name)."""

from __future__ import annotations

import typing

from ftc.methods import METHODS
from ftc.spec.models import Method, Spec


def test_the_spec_language_names_the_registrys_methods_in_its_order():
    assert typing.get_args(Method) == tuple(METHODS)


def test_the_records_hold_together():
    for method in METHODS.values():
        assert set(method.sections) <= set(Spec.model_fields), method.name
        assert method.has_adapter == bool(method.adapter), method.name  # a section shapes every adapter...
        assert not method.adapter or method.adapter in method.sections, method.name  # ...one of its own
        assert not method.continues_adapter or method.has_adapter, method.name
        assert not method.quantizes or method.has_adapter, method.name  # a quantized base cannot train itself
        assert [method.has_adapter, method.trains_all_weights, method.trains_chosen_layers].count(True) == 1
