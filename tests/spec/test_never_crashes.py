"""Whatever a spec file holds, validation answers with a Spec or located messages — never a crash."""

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftc.spec import SpecError, parse_spec
from ftc.spec.diagnostics import Code
from tests.specs import VALID

KEYS = st.sampled_from(
    [
        "model",
        "data",
        "train",
        "lora",
        "output",
        "datasets",
        "name_or_path",
        "template",
        "stage",
        "rank",
        "global_batch_size",
        "max_steps",
        "epochs",
        "path",
        "format",
        "x",
        "ключ",
        "a b",
        "1",
    ]
)
SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=5)


def check(text: str) -> None:
    try:
        parse_spec(text, "fuzz.toml")
    except SpecError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.file == "fuzz.toml" and diagnostic.message
            assert diagnostic.format().startswith("fuzz.toml:")
            assert diagnostic.code in set(Code) - {Code.INVALID}, diagnostic


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_random_documents(document):
    check(tomli_w.dumps(document))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID)), st.text(max_size=8))
def test_random_edits_of_a_valid_spec(position, inserted):
    check(VALID[:position] + inserted + VALID[position:])
