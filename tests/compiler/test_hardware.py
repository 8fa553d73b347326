"""The hardware registry's names: what people write (aliases, any case, with a count) → the record's own name."""

import pytest

from ftc.compiler import parse_hardware
from ftc.compiler.hardware import HARDWARE, hardware_key
from ftc.errors import FtcError

ALIASES = [
    ("910B", "Ascend910B-64GB"),
    ("910B-64GB", "Ascend910B-64GB"),
    ("Ascend910B", "Ascend910B-64GB"),
    ("H100", "H100-80GB"),
    ("H200", "H200-141GB"),
    ("A100", "A100-80GB"),
    ("L40S", "L40S-48GB"),
    ("A10G", "A10G-24GB"),
    ("L4", "L4-24GB"),
    ("RTX4090", "RTX4090-24GB"),
    ("4090", "RTX4090-24GB"),
    ("RTX3090", "RTX3090-24GB"),
    ("3090", "RTX3090-24GB"),
    ("V100", "V100-32GB"),
    ("T4", "T4-16GB"),
]


@pytest.mark.parametrize("alias, name", ALIASES)
@pytest.mark.parametrize("form, count", [("{}", 1), ("8x{}", 8), ("2 × {}", 2)])
@pytest.mark.parametrize("case", [str, str.lower, str.upper])
def test_aliases_name_their_record_in_every_form(alias, name, form, count, case):
    ref = parse_hardware(form.format(case(alias)), nodes=2)
    assert (ref.name, ref.devices_per_node, ref.nodes) == (name, count, 2)


def test_the_plan_records_the_records_own_name_not_the_alias():
    assert parse_hardware("8x910B-64GB").label() == "8xAscend910B-64GB"
    assert parse_hardware("A100-40GB").name == "A100-40GB"  # the 40 GB card keeps its full name


def test_every_name_and_alias_names_one_record_only():
    spellings = [hardware_key(spelling) for record in HARDWARE.values() for spelling in (record.name, *record.aliases)]
    repeated = sorted({key for key in spellings if spellings.count(key) > 1})
    assert repeated == []


@pytest.mark.parametrize("typed, meant", [("8x910", "Ascend910B-64GB"), ("h10", "H100-80GB"), ("cpuu", "cpu")])
def test_did_you_mean_considers_aliases(typed, meant):
    # "910" is far from "Ascend910B-64GB" but one letter from the alias "910B".
    with pytest.raises(FtcError) as caught:
        parse_hardware(typed)
    assert caught.value.hint == f"did you mean '{meant}'?"


def test_an_unknown_name_far_from_all_lists_names_and_aliases():
    with pytest.raises(FtcError) as caught:
        parse_hardware("MI300X")
    assert caught.value.message == "unknown hardware 'MI300X'"
    assert (
        "H100-80GB (H100)" in caught.value.hint and "Ascend910B-64GB (910B, 910B-64GB, Ascend910B)" in caught.value.hint
    )
