from pathlib import Path

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.spec import load_spec

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_and_plans_for_the_cpu(path):
    loaded = load_spec(path)
    plan = compile_plan(loaded.spec, parse_hardware("cpu"))
    assert plan.micro_batch_size.value * plan.gradient_accumulation_steps.value == loaded.spec.train.global_batch_size
