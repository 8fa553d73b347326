"""10 000 generated specs through validate and plan: zero tracebacks, every failure a located message.

Three kinds of input, mixed: a valid spec with random keys of the language set to random values
(types, nesting, unicode, huge and non-finite numbers), random documents, and either of those with
its text cut and spliced into invalid TOML. A spec that validates is planned for random hardware.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections import Counter
from typing import Any

import tomli_w
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import architecture_from_config, find_architecture
from ftc.errors import FtcError
from ftc.spec import SpecError, parse_spec
from ftc.spec.diagnostics import Code, dotted
from ftc.spec.schema import known_keys
from tests.specs import VALID

EXAMPLES = 10_000
BATCH = 10  # specs per hypothesis example: the same coverage for a tenth of the per-example overhead
FILE = "fuzz.toml"
KEYS = known_keys()
NAMED_KINDS = set(Code) - {Code.INVALID}
HARDWARE = [("cpu", 1)] * 4 + [("1xH100-80GB", 1), ("8xA100-40GB", 2), ("4xAscend910B-64GB", 1), ("2xT4-16GB", 1)]

UNICODE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 1e300, 5e-324, -0.0, 0.1]),
    st.booleans(),
    UNICODE,
    st.sampled_from(["sft", "dpo", "lora", "qlora", "freeze", "auto", "cpu", "llama3", "all", "text", "preference"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(UNICODE, st.sampled_from(KEYS)), inner, max_size=3)
    ),
    max_leaves=8,
)
EDITS = st.lists(
    st.tuples(st.sampled_from(KEYS + ["unknown", "train.unknown", "lora.rnak"]), st.one_of(VALUES, st.none())),
    min_size=1,
    max_size=4,
)


def edited_valid_spec(edits: list[tuple[str, Any]]) -> dict[str, Any]:
    document = tomllib.loads(VALID)
    for key, value in edits:
        node: Any = document
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[0] if node and isinstance(node[0], dict) else {}
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
        if isinstance(node, list):
            node = node[0] if node and isinstance(node[0], dict) else {}
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return document


DOCUMENTS = st.one_of(
    EDITS.map(edited_valid_spec),
    EDITS.map(edited_valid_spec),
    st.dictionaries(st.one_of(UNICODE, st.sampled_from(KEYS)), VALUES, max_size=5),
)


@st.composite
def spec_texts(draw) -> str:
    text = tomli_w.dumps(draw(DOCUMENTS))
    if draw(st.integers(0, 3)) == 0:  # one in four: spliced into (usually) invalid TOML
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        inserted = draw(st.one_of(UNICODE, st.sampled_from(["[", "]]", '"', "=", "\n[[", "\\u"])))
        text = text[:start] + inserted + text[end:]
    return text


tally: Counter[str] = Counter()


def check(text: str, hardware: tuple[str, int]) -> None:
    try:
        spec = parse_spec(text, FILE)
    except SpecError as error:
        tally["rejected"] += 1
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.file == FILE and diagnostic.line >= 1 and diagnostic.message, diagnostic
            assert diagnostic.format().startswith(f"{FILE}:{diagnostic.line}:"), diagnostic.format()
            assert diagnostic.code in NAMED_KINDS, diagnostic  # every refusal generated here is one we name
        return
    tally["valid"] += 1
    try:
        arch = (
            architecture_from_config(spec.model.architecture)
            if spec.model.architecture is not None
            else find_architecture(spec.model.name_or_path)
        )
        plan = compile_plan(spec, parse_hardware(*hardware), arch)
    except FtcError as error:
        tally["plan refused"] += 1
        assert error.message
        return
    tally["planned"] += 1
    as_json = json.dumps(plan.to_dict(), allow_nan=False)
    assert json.loads(as_json)["world_size"] >= 1
    if plan.memory is not None:  # None for a model whose shapes ftc cannot know
        assert all(math.isfinite(gib) for gib in plan.memory.terms.values())


@settings(
    max_examples=EXAMPLES // BATCH,
    deadline=None,
    database=None,
    derandomize=True,  # the same 10 000 every run: a failure here is a bug to fix, not a flake
    phases=(Phase.explicit, Phase.generate, Phase.shrink),  # no "explain" phase: it traces every line, slowly
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(st.tuples(spec_texts(), st.sampled_from(HARDWARE)), min_size=BATCH, max_size=BATCH))
def test_ten_thousand_specs_validate_and_plan_without_a_traceback(batch):
    for text, hardware in batch:
        tally["specs"] += 1
        check(text, hardware)


def test_zz_report_the_count(capsys):
    # Runs after the property above (pytest keeps file order); prints what the 10 000 did.
    with capsys.disabled():
        print(f"\ngenerated specs through validate and plan: {dict(tally)}")
    assert tally["specs"] >= EXAMPLES or tally["specs"] == 0  # 0 when run alone with -k
    assert tally["specs"] == 0 or (tally["valid"] > 500 and tally["rejected"] > 2000)


def test_paths_in_diagnostics_name_keys_of_the_language():
    # A sample with known mistakes: each message names the path that was written, in our dotted form.
    try:
        parse_spec(VALID.replace("rank = 8", "rank = -1").replace("seed = 42", 'seed = "x"'), FILE)
    except SpecError as error:
        assert [d.path for d in error.diagnostics] == ["train.seed", "lora.rank"]
        assert dotted(("data", "datasets", 0, "path")) == "data.datasets[0].path"
