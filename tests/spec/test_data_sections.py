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
    assert d.path == "data.datasets[0].columns" and d.line == 11  # the table's header
    assert "'prompt' is no field of the 'alpaca' format" in d.message
    assert d.hint == "the fields of 'alpaca' are: instruction, input, output, system, history"


@pytest.mark.parametrize(
    ("data_keys", "dataset_keys", "complaint"),
    [
        ("", "weight = 2.0\n" + SECOND, "weight is set on some datasets but not all"),
        ("mix_size = 10\n", "", "no dataset has a weight"),
        (
            "eval_ratio = 0.1\n",
            '[[data.eval_datasets]]\npath = "e.jsonl"\n',
            "eval_ratio and eval_datasets are both set",
        ),
        ("streaming = true\neval_ratio = 0.1\n", "", "a streamed dataset has no known size"),
        ("", '[[data.eval_datasets]]\npath = "e.jsonl"\nweight = 1.0\n', "eval_datasets are read whole, not mixed"),
    ],
)
def test_data_rules(data_keys, dataset_keys, complaint):
    text = replace(VALID, "cutoff_len = 1024\n", "cutoff_len = 1024\n" + data_keys)
    d = only(replace(text, DATASET, DATASET + dataset_keys))
    assert d.path == "data" and complaint in d.message


@pytest.mark.parametrize(("key", "value"), [("weight", "0"), ("eval_ratio", "1.0"), ("mix_size", "0")])
def test_ranges(key, value):
    where = DATASET if key == "weight" else "cutoff_len = 1024\n"
    d = only(replace(VALID, where, where + f"{key} = {value}\n"))
    assert d.path.endswith(key)


def test_eval_dataset_paths_are_anchored_at_the_spec_like_training_ones(tmp_path):
    from ftc.spec.resolve import resolve_paths

    text = replace(VALID, "[train]", '[[data.eval_datasets]]\npath = "held/out.jsonl"\n\n[train]')
    resolved = resolve_paths(parse_spec(text, "job.toml"), tmp_path, is_local=lambda path: False)
    assert resolved.data.eval_datasets[0].path == str(tmp_path / "held" / "out.jsonl")
    assert resolved.data.datasets[0].path == str(tmp_path / "data" / "alpaca_en.json")
