"""The spec language describes itself: every key documented, the JSON Schema, `ftc explain` and `ftc init`."""

from __future__ import annotations

import itertools
import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from ftc.methods import METHODS
from ftc.spec import parse_spec
from ftc.spec.diagnostics import inner_model
from ftc.spec.models import Spec
from ftc.spec.schema import explain, json_schema, key_doc, known_keys, schema_text
from ftc.spec.starter import starter_spec
from ftc.stages import STAGES
from tests.commands import ftc

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def all_fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        inner = inner_model(field.annotation)
        if inner is not None:
            yield from all_fields(inner, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def test_every_key_has_a_one_line_description():
    undocumented = [path for path, field in all_fields(Spec) if not (field.description or "").strip()]
    assert undocumented == []
    multiline = [path for path, field in all_fields(Spec) if "\n" in field.description]
    assert multiline == []


def test_every_number_is_bounded_below():
    # A count, a rate or a ratio below zero is never meant; the schema says so for every number.
    unbounded = []
    for path, field in all_fields(Spec):
        types = {arg for arg in typing.get_args(field.annotation)} | {field.annotation}
        if types & {int, float} and not key_doc(path).range:
            unbounded.append(path)
    assert unbounded == []


def test_the_committed_schema_is_the_generated_one():
    assert (EXAMPLES / "ftc.schema.json").read_text() == schema_text(), "run: ftc schema -o examples/ftc.schema.json"


def test_every_example_names_the_schema_for_editors():
    for example in EXAMPLES.glob("*.toml"):
        assert example.read_text().startswith("#:schema ftc.schema.json\n"), example.name


def test_the_schema_forbids_unknown_keys_and_knows_extends():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert "extends" in schema["properties"] and set(schema["required"]) == {"model", "data", "train"}
    train = schema["$defs"]["TrainSection"]["properties"]["learning_rate"]
    assert train["exclusiveMinimum"] == 0 and train["maximum"] == 1 and train["description"]


def test_ftc_schema_prints_the_same_schema():
    result = ftc("schema")
    assert result.returncode == 0 and json.loads(result.stdout) == json_schema()


def test_explain_a_key_gives_doc_type_default_and_range():
    text = explain("train.learning_rate")
    assert "Peak learning rate" in text and "type:    number" in text
    assert "default: 0.0001" in text and "range:   0 < value ≤ 1" in text
    assert "one of" in explain("data.datasets.format") and '"alpaca"' in explain("data.datasets.format")


def test_explain_a_section_lists_its_keys():
    text = explain("lora")
    assert all(key in text for key in ("rank", "alpha", "dropout", "target"))


def test_explain_an_unknown_key_suggests_and_exits_non_zero():
    result = ftc("explain", "train.lerning_rate")
    assert result.returncode == 1 and "did you mean train.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_known_keys_cover_every_field():
    keys = set(known_keys())
    assert {path for path, _ in all_fields(Spec)} <= keys


@pytest.mark.parametrize(
    ("stage", "method"),
    [(stage, method) for stage, method in itertools.product(STAGES, METHODS) if method in STAGES[stage].methods],
)
def test_every_starter_validates_and_shows_every_key(stage, method):
    text = starter_spec(stage, method, "meta-llama/Llama-3.1-8B")
    spec = parse_spec(text, "starter.toml")
    assert (spec.train.stage, spec.train.method) == (stage, method)
    for path, _ in all_fields(Spec):
        assert f" {path.rsplit('.', 1)[-1]} = " in text or f"\n{path.rsplit('.', 1)[-1]} = " in text, path


def test_init_refuses_a_method_the_stage_does_not_run_with(tmp_path):
    result = ftc("init", "job.toml", "--stage", "rm", "--method", "freeze", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "use one of: full, lora" in result.stderr
    assert not (tmp_path / "job.toml").exists()


def test_init_writes_a_starter_and_never_overwrites(tmp_path):
    result = ftc("init", "job.toml", "--stage", "dpo", "--method", "lora", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ftc("validate", "job.toml", cwd=tmp_path).returncode == 0
    before = (tmp_path / "job.toml").read_text()
    again = ftc("init", "job.toml", "--stage", "sft", cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr
    assert (tmp_path / "job.toml").read_text() == before
    wrong = ftc("init", "other.toml", "--stage", "sfft", cwd=tmp_path)
    assert wrong.returncode == 1 and "choose one of" in wrong.stderr and not (tmp_path / "other.toml").exists()


def test_init_vision_writes_an_image_starter_that_plans_its_images(tmp_path):
    result = ftc("init", "job.toml", "--vision", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    spec = parse_spec((tmp_path / "job.toml").read_text(), "job.toml")
    assert (spec.model.name_or_path, spec.model.template) == ("Qwen/Qwen2-VL-2B-Instruct", "qwen2_vl")
    assert spec.data.image_max_pixels == 1003520 and spec.data.datasets[0].path == "data/sft_images.jsonl"
    assert "\n[vision]\nfreeze_tower = true" in (tmp_path / "job.toml").read_text()  # live, not commented
    planned = ftc("plan", "job.toml", "-H", "1xA100-80GB", cwd=tmp_path)
    assert planned.returncode == 0 and "1280 image tokens" in " ".join(planned.stdout.split())


def test_init_vision_takes_the_models_template_and_refuses_a_text_model(tmp_path):
    from ftc.cli.docs import write_starter
    from ftc.errors import FtcError

    write_starter(tmp_path / "llava.toml", "dpo", "lora", "llava-hf/llava-1.5-7b-hf", False, vision=True)
    assert parse_spec((tmp_path / "llava.toml").read_text(), "llava.toml").model.template == "llava"
    write_starter(tmp_path / "qwen25.toml", "sft", "lora", "Qwen/Qwen2.5-VL-7B-Instruct", False, vision=True)
    assert parse_spec((tmp_path / "qwen25.toml").read_text(), "qwen25.toml").model.template == "qwen2_vl"
    write_starter(tmp_path / "gemma3.toml", "sft", "lora", "google/gemma-3-4b-it", False, vision=True)
    assert parse_spec((tmp_path / "gemma3.toml").read_text(), "gemma3.toml").model.template == "gemma3"
    with pytest.raises(FtcError, match="not an image\\+text model"):
        write_starter(tmp_path / "text.toml", "sft", "lora", "meta-llama/Llama-3.1-8B", False, vision=True)
    write_starter(tmp_path / "kto.toml", "kto", "lora", None, False, vision=True)
    assert parse_spec((tmp_path / "kto.toml").read_text(), "kto.toml").data.datasets[0].format == "kto"
    with pytest.raises(FtcError, match="carry no images") as caught:
        write_starter(tmp_path / "pt.toml", "pt", "lora", None, False, vision=True)
    assert caught.value.hint.endswith("(sft, dpo, kto)")
