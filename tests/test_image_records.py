"""Records with images: placeholders matched to files, and every missing or unreadable image located first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftc.records.check import check_data
from ftc.records.formats import FORMATS, IMAGE, BadRecord
from ftc.spec.models import DataSection, DatasetSection

PIL = pytest.importorskip("PIL.Image")


def png(path: Path, colour=(200, 30, 30)) -> str:
    PIL.new("RGB", (8, 8), colour).save(path)
    return path.name


def parse(data_format: str, record: dict):
    return FORMATS[data_format].parse(record, {})


def test_sharegpt_images_follow_their_placeholders():
    record = {
        "conversations": [
            {"from": "human", "value": f"{IMAGE}What is this? And {IMAGE}?"},
            {"from": "gpt", "value": "A square and a circle."},
        ],
        "images": ["a.png", "b.png"],
    }
    chat = parse("sharegpt", record)
    assert chat.images == ("a.png", "b.png")
    assert chat.messages[0]["content"] == f"{IMAGE}What is this? And {IMAGE}?"


def test_a_record_without_placeholders_gets_its_images_before_the_first_user_turn():
    record = {
        "messages": [
            {"role": "system", "content": "Describe images."},
            {"role": "user", "content": "What colour?"},
            {"role": "assistant", "content": "Red."},
        ],
        "images": ["a.png", "b.png"],
    }
    chat = parse("messages", record)
    assert chat.messages[1]["content"] == f"{IMAGE}{IMAGE}What colour?"
    assert chat.messages[0]["content"] == "Describe images." and chat.images == ("a.png", "b.png")


def test_alpaca_takes_images_and_a_text_record_is_unchanged():
    chat = parse("alpaca", {"instruction": "Caption it.", "output": "A red square.", "images": ["a.png"]})
    assert chat.messages[0]["content"] == f"{IMAGE}Caption it." and chat.images == ("a.png",)
    assert parse("alpaca", {"instruction": "Say hi.", "output": "Hi."}).images == ()


@pytest.mark.parametrize(
    ("images", "text", "words"),
    [
        (["a.png"], f"{IMAGE}{IMAGE}Compare.", "names 1 image(s), but the text has 2 <image> placeholder(s)"),
        (["a.png", "b.png"], f"{IMAGE}Compare.", "names 2 image(s), but the text has 1"),
        ("a.png", "Look.", "must be a list of image file paths"),
        ([""], "Look.", "must be a list of image file paths"),
    ],
)
def test_mismatched_images_are_bad_records(images, text, words):
    record = {"conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": "Ok."}], "images": images}
    with pytest.raises(BadRecord, match=None) as caught:
        parse("sharegpt", record)
    assert words in str(caught.value)


def test_missing_unreadable_and_unsupported_images_are_reported_by_file_and_record(tmp_path):
    good = png(tmp_path / "red.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "red.png").read_bytes()[:20])  # a PNG cut short
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    (tmp_path / "folder.png").mkdir()
    records = [
        {"instruction": "Caption.", "output": "Red.", "images": [good]},
        {"instruction": "Caption.", "output": "Red.", "images": ["gone.png"]},
        {"instruction": "Caption.", "output": "Red.", "images": [good, "cut.png"]},
        {"instruction": "Caption.", "output": "Red.", "images": ["notes.png"]},
        {"instruction": "Caption.", "output": "Red.", "images": ["folder.png"]},
        {"instruction": f"{IMAGE}{IMAGE}Caption.", "output": "Red.", "images": [good]},
    ]
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    check = check_data(DataSection(datasets=[DatasetSection(path=str(path))]))
    assert check.records == 6 and check.problems == 5
    shown = check.shown
    assert shown[0] == f"{path} record 1: 'images'[0] 'gone.png' does not exist"
    assert shown[1].startswith(f"{path} record 2: 'images'[1] 'cut.png' cannot be read")
    assert shown[2] == f"{path} record 3: 'images'[0] 'notes.png' is not an image format Pillow reads " + (
        "(PNG, JPEG, WebP, GIF, BMP, TIFF …)"
    )
    assert shown[3] == f"{path} record 4: 'images'[0] 'folder.png' is not a file"
    assert shown[4].startswith(f"{path} record 5: 'images' names 1 image(s), but the text has 2")
    assert "relative to the dataset file's folder" in check.error().hint


def test_a_mapped_images_column_is_named_as_the_file_names_it(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"instruction": "Caption.", "output": "Red.", "pictures": ["gone.jpg"]}) + "\n")
    check = check_data(DataSection(datasets=[DatasetSection(path=str(path), columns={"images": "pictures"})]))
    assert check.shown == [f"{path} line 1: 'pictures'[0] 'gone.jpg' does not exist"]


def test_image_paths_are_relative_to_media_dir_when_it_is_set(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    png(media / "red.png")
    path = tmp_path / "c.jsonl"
    records = [{"instruction": "Caption.", "output": "Red.", "images": [name]} for name in ("red.png", "blue.png")]
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    check = check_data(DataSection(datasets=[DatasetSection(path=str(path))], media_dir=str(media)))
    assert check.shown == [f"{path} line 2: 'images'[0] 'blue.png' does not exist"]
    assert f"relative to data.media_dir ({media})" in check.error().hint


def test_media_dir_is_anchored_at_the_specs_folder(tmp_path):
    from ftc.spec import parse_spec
    from ftc.spec.resolve import resolve_paths
    from tests.specs import VALID, replace

    spec = parse_spec(replace(VALID, "cutoff_len = 1024", 'cutoff_len = 1024\nmedia_dir = "images"'), "job.toml")
    assert resolve_paths(spec, tmp_path, Path.exists).data.media_dir == str(tmp_path / "images")


def test_preference_records_carry_images_placed_in_the_prompt():
    from ftc.records.formats import FORMATS

    record = {"prompt": "What is it?", "chosen": "A red circle.", "rejected": "A blue circle.", "images": ["a.png"]}
    pair = FORMATS["preference"].parse(record, {})
    assert pair.images == ("a.png",) and pair.prompt[-1]["content"] == "<image>What is it?"


def test_kto_records_carry_images_placed_in_the_prompt_in_either_shape():
    example = parse("kto", {"prompt": "What is it?", "completion": "A red circle.", "label": True, "images": ["a.png"]})
    assert example.images == ("a.png",) and example.prompt[-1]["content"] == f"{IMAGE}What is it?"
    turns = [{"role": "user", "content": f"Is {IMAGE} red?"}, {"role": "assistant", "content": "No."}]
    example = parse("kto", {"messages": turns, "label": "false", "images": ["b.png"]})
    assert (example.prompt, example.completion, example.label, example.images) == (turns[:1], "No.", False, ("b.png",))
    assert parse("kto", {"prompt": "Say hi.", "completion": "Hi.", "label": True}).images == ()
    with pytest.raises(BadRecord, match="names 2 image"):
        parse("kto", {"prompt": f"{IMAGE}What is it?", "completion": "A.", "label": True, "images": ["a", "b"]})


def test_the_data_check_locates_a_missing_image_of_a_kto_record_and_takes_kto_records_with_images(tmp_path):
    picture = png(tmp_path / "red.png")
    records = [
        {"prompt": "What is it?", "completion": "A red square.", "label": True, "images": [picture]},
        {"prompt": "What is it?", "completion": "A blue square.", "label": False, "images": ["gone.png"]},
    ]
    path = tmp_path / "kto.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    check = check_data(DataSection(datasets=[DatasetSection(path=str(path), format="kto")]), stage="kto")
    assert (check.records, check.problems) == (2, 1)
    assert check.shown[0].startswith(f"{path} line 2: ") and "gone.png" in check.shown[0]


def preference_file(tmp_path: Path) -> Path:
    picture = png(tmp_path / "red.png")
    records = [
        {"prompt": "What is it?", "chosen": "A red square.", "rejected": "A blue square.", "images": [picture]},
        {"prompt": "Say hi.", "chosen": "Hi.", "rejected": "Bye."},  # no images: every stage takes it
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("stage", ["orpo", "cpo", "rm"])
def test_a_stage_that_cannot_train_on_images_refuses_records_with_them_by_name(tmp_path, stage):
    from ftc.stages import STAGES

    data = DataSection(datasets=[DatasetSection(path=str(preference_file(tmp_path)), format="preference")])
    check = check_data(data, stage=stage)
    assert (check.records, check.problems) == (2, 1)
    assert check.shown == [
        f"{tmp_path / 'pairs.jsonl'} line 1: 'images' names 1 image(s), but train.stage = {stage!r} cannot train "
        f"on images: {STAGES[stage].no_images_why}"
    ]
    assert "train.stage = 'sft' or 'dpo' or 'kto'" in check.error().hint
    assert check_data(data, stage="dpo").problems == 0
    assert check_data(data).problems == 0  # without a stage, only the records themselves are checked


def test_validate_data_refuses_images_for_orpo(tmp_path, capsys):
    from ftc.cli.typer_app import run
    from tests.specs import VALID, as_dpo, replace

    data = preference_file(tmp_path)
    spec = tmp_path / "job.toml"
    spec.write_text(replace(as_dpo(replace(VALID, "data/alpaca_en.json", str(data))), '"dpo"', '"orpo"'))
    assert run(["validate", "--data", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "line 1: 'images' names 1 image(s), but train.stage = 'orpo' cannot train on images" in out
    vision = replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", "Qwen/Qwen2-VL-2B-Instruct")
    spec.write_text(as_dpo(replace(vision, "data/alpaca_en.json", str(data))))
    assert run(["validate", "--data", str(spec)]) == 0


def test_a_text_only_model_refuses_records_with_images_whatever_the_stage(tmp_path, capsys):
    from ftc.cli.typer_app import run
    from tests.specs import VALID, as_dpo, replace

    spec = tmp_path / "job.toml"
    spec.write_text(as_dpo(replace(VALID, "data/alpaca_en.json", str(preference_file(tmp_path)))))
    assert run(["validate", "--data", str(spec)]) == 1
    out = capsys.readouterr().out
    assert (
        "line 1: 'images' names 1 image(s), but the model (model_type 'llama') reads text only: it has no vision "
        "tower to see them" in out
    )
    assert "train an image+text model (model_type gemma3, llava, qwen2_5_vl, qwen2_vl)" in out
    assert "line 2" not in out  # the record without images is fine on a text model
