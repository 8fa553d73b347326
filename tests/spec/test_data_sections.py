"""[data] and [[data.datasets]]: column mapping, weights, eval and streaming rules, reported at their keys."""

from __future__ import annotations

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace


def only(text: str):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    (diagnostic,) = caught.value.diagnostics
    return diagnostic


DATASET = 'format = "alpaca"\n'
SECOND = '\n[[data.datasets]]\npath = "more.jsonl"\n'


def test_a_full_data_section_parses():
    text = replace(VALID, "cutoff_len = 1024\n", "cutoff_len = 1024\nmix_size = 100\n")
    text = replace(
        text, DATASET, DATASET + 'weight = 3\ncolumns = { instruction = "question" }\n' + SECOND + "weight = 1.0\n"
    )
    text = replace(text, "[train]", '[[data.eval_datasets]]\npath = "held_out.jsonl"\n\n[train]')
    data = parse_spec(text, "job.toml").data
    assert [d.weight for d in data.datasets] == [3.0, 1.0] and data.mix_size == 100
    assert data.datasets[0].columns == {"instruction": "question"}
    assert data.eval_datasets[0].path == "held_out.jsonl" and data.eval_ratio == 0


def test_a_column_the_format_does_not_read_is_named_with_the_formats_fields():
    d = only(replace(VALID, DATASET, DATASET + '[data.datasets.columns]\nprompt = "q"\n'))
    assert (d.line, d.path, d.code) == (11, "data.datasets[0].columns", "E-UNKNOWN-KEY")  # the table's header
    assert "'prompt' is no field of the 'alpaca' format" in d.message
    assert d.hint == "the fields of 'alpaca' are: instruction, input, output, system, history, images"


@pytest.mark.parametrize(
    ("data_keys", "dataset_keys"),
    [
        pytest.param("", "weight = 2.0\n" + SECOND, id="weight-on-some-datasets"),
        pytest.param("mix_size = 10\n", "", id="mix_size-without-weights"),
        pytest.param("eval_ratio = 0.1\n", '[[data.eval_datasets]]\npath = "e.jsonl"\n', id="two-ways-to-evaluate"),
        pytest.param("streaming = true\neval_ratio = 0.1\n", "", id="eval_ratio-of-a-stream"),
        pytest.param("", '[[data.eval_datasets]]\npath = "e.jsonl"\nweight = 1.0\n', id="weighted-eval-dataset"),
    ],
)
def test_data_rules(data_keys, dataset_keys):
    text = replace(VALID, "cutoff_len = 1024\n", "cutoff_len = 1024\n" + data_keys)
    d = only(replace(text, DATASET, DATASET + dataset_keys))
    assert (d.line, d.path, d.code) == (5, "data", "E-CONFLICT")


@pytest.mark.parametrize(("key", "value"), [("weight", "0"), ("eval_ratio", "1.0"), ("mix_size", "0")])
def test_ranges(key, value):
    where = DATASET if key == "weight" else "cutoff_len = 1024\n"
    d = only(replace(VALID, where, where + f"{key} = {value}\n"))
    assert d.path.endswith(key) and d.code == "E-RANGE"


def test_eval_dataset_paths_are_anchored_at_the_spec_like_training_ones(tmp_path):
    from ftc.spec.resolve import resolve_paths

    text = replace(VALID, "[train]", '[[data.eval_datasets]]\npath = "held/out.jsonl"\n\n[train]')
    resolved = resolve_paths(parse_spec(text, "job.toml"), tmp_path, is_local=lambda path: False)
    assert resolved.data.eval_datasets[0].path == str(tmp_path / "held" / "out.jsonl")
    assert resolved.data.datasets[0].path == str(tmp_path / "data" / "alpaca_en.json")
