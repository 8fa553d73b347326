import re
from pathlib import Path

import pytest

from ftc.spec import SpecError, load_spec, parse_spec
from ftc.spec.diagnostics import Code, validation_diagnostics
from ftc.spec.models import Spec
from tests.specs import VALID, replace


def problems(text: str) -> list:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    return caught.value.diagnostics


def only(text: str):
    found = problems(text)
    assert len(found) == 1, [d.format() for d in found]
    return found[0]


def test_valid_spec_parses_with_the_documented_keys():
    spec = parse_spec(VALID, "job.toml")
    assert spec.model.template == "llama3"
    assert spec.data.datasets[0].format == "alpaca"
    assert (spec.train.stage, spec.train.method, spec.train.max_steps) == ("sft", "lora", 60)
    assert spec.lora.rank == 8 and spec.output.dir == "runs/quickstart"
    assert spec.model.trust_remote_code is False


def test_unknown_key_is_located_with_did_you_mean():
    d = only(replace(VALID, "rank = 8", "rnak = 8"))
    assert (d.line, d.path, d.code) == (21, "lora.rnak", "E-UNKNOWN-KEY")
    assert d.hint == "did you mean 'rank'?"
    assert d.format() == "job.toml:21: lora.rnak: [E-UNKNOWN-KEY] unknown key 'rnak' (hint: did you mean 'rank'?)"


def test_unknown_key_without_a_close_match_lists_the_valid_ones():
    d = only(replace(VALID, "rank = 8", "zzzzzz = 8"))
    assert d.code == "E-UNKNOWN-KEY"
    assert "rank" in d.hint and "alpha" in d.hint and "target" in d.hint


def test_wrong_type_names_the_expected_type_and_how_to_write_it():
    d = only(replace(VALID, "cutoff_len = 1024", 'cutoff_len = "1024"'))
    assert (d.line, d.path, d.code) == (6, "data.cutoff_len", "E-TYPE")
    assert "expected an integer" in d.message and "'1024'" in d.message
    assert d.hint == "write the number without quotes: cutoff_len = 1024"


def test_value_out_of_range_names_the_range():
    d = only(replace(VALID, "global_batch_size = 16", "global_batch_size = 0"))
    assert (d.line, d.path, d.code) == (15, "train.global_batch_size", "E-RANGE")
    assert "must be ≥ 1, got 0" in d.message
    assert d.hint == "valid range: 1 ≤ global_batch_size ≤ 1048576"


def test_bad_enum_inside_an_array_of_tables():
    d = only(replace(VALID, 'format = "alpaca"', 'format = "alpca"'))
    assert (d.line, d.path, d.code) == (10, "data.datasets[0].format", "E-ENUM")
    assert d.hint == "did you mean 'alpaca'?"


def test_missing_required_key_points_at_its_table():
    d = only(replace(VALID, 'name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"\n', ""))
    assert (d.line, d.path, d.code) == (1, "model.name_or_path", "E-MISSING")
    assert d.hint == "add `name_or_path = …` under [model]"


def test_missing_section_is_named_as_a_table():
    text = VALID.split("[train]")[0]
    d = only(text)
    assert (d.path, d.code) == ("train", "E-MISSING") and "required table [train] is missing" in d.message


def test_cross_field_rule_has_a_hint():
    d = only(replace(VALID, "max_steps = 60", "max_steps = 60\nepochs = 2.0"))
    assert (d.line, d.path, d.code) == (12, "train", "E-CONFLICT") and "keep one" in d.hint


def test_unknown_chat_template():
    d = only(replace(VALID, 'template = "llama3"', 'template = "lama3"'))
    assert (d.line, d.path, d.code) == (3, "model.template", "E-ENUM") and d.hint == "did you mean 'llama3'?"


def test_toml_syntax_error_has_line_and_column():
    d = only(replace(VALID, "[lora]", "[lora"))
    assert (d.line, d.column, d.path, d.code) == (20, 6, "", "E-TOML-SYNTAX")
    assert d.format().startswith("job.toml:20:6: [E-TOML-SYNTAX] ")


def test_every_mistake_is_reported_at_once_in_line_order():
    text = replace(VALID, "rank = 8", "rnak = 8")
    text = replace(text, "cutoff_len = 1024", 'cutoff_len = "big"')
    text = replace(text, 'stage = "sft"', 'stage = "sfft"')
    found = problems(text)
    assert [(d.line, d.path, d.code) for d in found] == [
        (6, "data.cutoff_len", "E-TYPE"),
        (13, "train.stage", "E-ENUM"),
        (21, "lora.rnak", "E-UNKNOWN-KEY"),
    ]


def test_strings_are_not_coerced_to_booleans():
    d = only(replace(VALID, 'template = "llama3"', 'template = "llama3"\ntrust_remote_code = "yes"'))
    assert (d.line, d.path, d.code) == (4, "model.trust_remote_code", "E-TYPE")


@pytest.mark.parametrize(
    "text",
    ["", "model = 3", "[model]\nname_or_path = 1\n[[data]]\n", "[[train]]\n[[train]]", "a.b.c = [1, {x = 2}]"],
)
def test_odd_documents_give_located_messages_not_exceptions(text):
    for d in problems(text):
        assert d.file == "job.toml" and d.line >= 1 and d.message and d.code in set(Code)


def test_numeric_choices_are_listed():
    d = only(VALID + "\n[quantization]\nbits = 5\n")
    assert (d.path, d.code) == ("quantization.bits", "E-ENUM") and d.message == "5 is not one of: 2, 3, 4, 8"


# -- the codes: one per kind of problem, each documented, each reported by the mistake it names ---------
# A mistake in a spec text per code that parse_spec reports; files, extends and --set need load_spec.
MISTAKES = {
    "E-TOML-SYNTAX": replace(VALID, "[lora]", "[lora"),
    "E-UNKNOWN-KEY": replace(VALID, "rank = 8", "rnak = 8"),
    "E-MISSING": replace(VALID, "max_steps = 60\n", ""),
    "E-TYPE": replace(VALID, "seed = 42", "seed = 4.2"),
    "E-ENUM": replace(VALID, 'method = "lora"', 'method = "lorra"'),
    "E-RANGE": replace(VALID, "alpha = 16", "alpha = 0"),
    "E-LENGTH": replace(VALID, 'template = "llama3"', 'template = ""'),
    "E-FORMAT": VALID + '\n[slurm]\npartition = "gpu normal"\n',
    "E-SECRET": VALID + '\n[launch]\nenv = { HF_TOKEN = "hf_x" }\n',
    "E-RESERVED": VALID + '\n[launch]\nenv = { RANK = "0" }\n',
    "E-CONFLICT": VALID + "\n[quantization]\nbits = 4\n",
}


@pytest.mark.parametrize("code", sorted(MISTAKES))
def test_each_code_is_what_its_mistake_reports(code):
    assert only(MISTAKES[code]).code == code


def test_files_extends_and_overrides_have_codes_of_their_own(tmp_path):
    (tmp_path / "job.toml").write_text(VALID)
    (tmp_path / "child.toml").write_text("extends = 3\n")
    for path, overrides, code in [
        (tmp_path / "nope.toml", (), "E-FILE"),
        (tmp_path / "child.toml", (), "E-EXTENDS"),
        (tmp_path / "job.toml", ("train.seed",), "E-OVERRIDE"),
    ]:
        with pytest.raises(SpecError) as caught:
            load_spec(path, overrides)
        assert [d.code for d in caught.value.diagnostics] == [code]


def test_a_pydantic_error_no_code_names_is_still_reported_with_one():
    error = {"type": "a_kind_pydantic_may_add", "loc": ("train", "seed"), "msg": "refused", "input": 1}
    (d,) = validation_diagnostics([error], {}, "job.toml", Spec)
    assert (d.path, d.code, d.message) == ("train.seed", "E-INVALID", "refused")


def test_every_code_is_unique_documented_and_reported():
    members = list(Code.__members__.values())  # with aliases: a code given twice would show here
    assert len({member.value for member in members}) == len(members) == len(Code)
    for code in Code:
        assert re.fullmatch(r"E(-[A-Z]+)+", code), code
        assert code.meaning and "\n" not in code.meaning, code
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r"^ *\| `(E-[A-Z-]+)` \| (.+) \|$", readme, re.M)
    assert documented == [(code.value, code.meaning) for code in Code]
    # E-REGISTRY needs a registry file beside the spec: tests/spec/test_dataset_registry.py makes it happen.
    assert set(Code) == {*MISTAKES, "E-FILE", "E-EXTENDS", "E-OVERRIDE", "E-INVALID", "E-REGISTRY"}
