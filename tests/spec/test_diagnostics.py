import pytest

from ftc.spec import SpecError, parse_spec
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
    assert (d.line, d.path) == (21, "lora.rnak")
    assert "unknown key 'rnak'" in d.message
    assert d.hint == "did you mean 'rank'?"
    assert d.format() == "job.toml:21: lora.rnak: unknown key 'rnak' (hint: did you mean 'rank'?)"


def test_unknown_key_without_a_close_match_lists_the_valid_ones():
    d = only(replace(VALID, "rank = 8", "zzzzzz = 8"))
    assert "rank" in d.hint and "alpha" in d.hint and "target" in d.hint


def test_wrong_type_names_the_expected_type_and_how_to_write_it():
    d = only(replace(VALID, "cutoff_len = 1024", 'cutoff_len = "1024"'))
    assert (d.line, d.path) == (6, "data.cutoff_len")
    assert "expected an integer" in d.message and "'1024'" in d.message
    assert d.hint == "write the number without quotes: cutoff_len = 1024"


def test_value_out_of_range_names_the_range():
    d = only(replace(VALID, "global_batch_size = 16", "global_batch_size = 0"))
    assert d.path == "train.global_batch_size" and d.line == 15
    assert "must be ≥ 1, got 0" in d.message
    assert d.hint == "valid range: 1 ≤ global_batch_size ≤ 1048576"


def test_bad_enum_inside_an_array_of_tables():
    d = only(replace(VALID, 'format = "alpaca"', 'format = "alpca"'))
    assert (d.line, d.path) == (10, "data.datasets[0].format")
    assert d.hint == "did you mean 'alpaca'?"


def test_missing_required_key_points_at_its_table():
    d = only(replace(VALID, 'name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"\n', ""))
    assert d.path == "model.name_or_path" and d.line == 1
    assert "required key 'name_or_path' is missing" in d.message
    assert d.hint == "add `name_or_path = …` under [model]"


def test_missing_section_is_named_as_a_table():
    text = VALID.split("[train]")[0]
    d = only(text)
    assert d.path == "train" and "required table [train] is missing" in d.message


def test_cross_field_rule_has_a_hint():
    d = only(replace(VALID, "max_steps = 60", "max_steps = 60\nepochs = 2.0"))
    assert d.path == "train" and "both set" in d.message and "keep one" in d.hint


def test_unknown_chat_template():
    d = only(replace(VALID, 'template = "llama3"', 'template = "lama3"'))
    assert d.path == "model.template" and d.hint == "did you mean 'llama3'?"


def test_toml_syntax_error_has_line_and_column():
    d = only(replace(VALID, "[lora]", "[lora"))
    assert (d.line, d.column) == (20, 6)
    assert d.format().startswith("job.toml:20:6: TOML syntax error:")


def test_every_mistake_is_reported_at_once_in_line_order():
    text = replace(VALID, "rank = 8", "rnak = 8")
    text = replace(text, "cutoff_len = 1024", 'cutoff_len = "big"')
    text = replace(text, 'stage = "sft"', 'stage = "sfft"')
    found = problems(text)
    assert [(d.line, d.path) for d in found] == [(6, "data.cutoff_len"), (13, "train.stage"), (21, "lora.rnak")]


def test_strings_are_not_coerced_to_booleans():
    d = only(replace(VALID, 'template = "llama3"', 'template = "llama3"\ntrust_remote_code = "yes"'))
    assert d.path == "model.trust_remote_code" and "true or false" in d.message


@pytest.mark.parametrize(
    "text",
    ["", "model = 3", "[model]\nname_or_path = 1\n[[data]]\n", "[[train]]\n[[train]]", "a.b.c = [1, {x = 2}]"],
)
def test_odd_documents_give_located_messages_not_exceptions(text):
    for d in problems(text):
        assert d.file == "job.toml" and d.line >= 1 and d.message


def test_numeric_choices_are_listed():
    d = only(VALID + "\n[quantization]\nbits = 3\n")
    assert d.path == "quantization.bits" and d.message == "3 is not one of: 4, 8"
