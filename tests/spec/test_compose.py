"""extends and --set: one base spec serves a sweep, and errors point where the bad value was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftc.spec import SpecError, load_spec

BASE = """\
[model]
name_or_path = "meta-llama/Llama-3.1-8B"
template = "llama3"

[[data.datasets]]
path = "data/base.json"

[train]
method = "lora"
learning_rate = 1e-4
max_steps = 100

[lora]
rank = 8
alpha = 16
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, overrides: tuple[str, ...] = ()) -> list:
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    return caught.value.diagnostics


def test_child_merges_tables_key_by_key_and_replaces_arrays(tmp_path):
    write(tmp_path, "base.toml", BASE)
    child = write(
        tmp_path,
        "sweep/lr.toml",
        'extends = "../base.toml"\n[train]\nlearning_rate = 3e-4\n[[data.datasets]]\npath = "data/child.json"\n',
    )
    loaded = load_spec(child)
    assert loaded.spec.train.learning_rate == 3e-4
    assert loaded.spec.train.max_steps == 100  # kept from the base table
    assert loaded.spec.lora.rank == 8
    assert [d.path for d in loaded.spec.data.datasets] == ["data/child.json"]  # replaced, not appended
    assert loaded.sources == (child.parent / "../base.toml", child)
    assert "extends" not in loaded.document


def test_chains_of_bases_resolve_relative_to_each_file(tmp_path):
    write(tmp_path, "common/base.toml", BASE)
    write(tmp_path, "common/lora16.toml", 'extends = "base.toml"\n[lora]\nrank = 16\n')
    child = write(tmp_path, "jobs/a.toml", 'extends = "../common/lora16.toml"\n[train]\nseed = 7\n')
    spec = load_spec(child).spec
    assert (spec.lora.rank, spec.lora.alpha, spec.train.seed) == (16, 16, 7)


def test_an_error_in_the_base_points_at_the_base_file_and_line(tmp_path):
    write(tmp_path, "base.toml", BASE.replace("rank = 8", 'rank = "eight"'))
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n[train]\nlearning_rate = -1.0\n')
    found = {(Path(d.file).name, d.line, d.path, d.code) for d in problems(child)}
    assert found == {("base.toml", 14, "lora.rank", "E-TYPE"), ("child.toml", 3, "train.learning_rate", "E-RANGE")}


def test_a_child_value_hides_the_base_position_of_the_same_key(tmp_path):
    write(tmp_path, "base.toml", BASE)
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n\n\n[lora]\nrank = 0\n')
    (diagnostic,) = problems(child)
    where = (Path(diagnostic.file).name, diagnostic.line, diagnostic.path)
    assert (*where, diagnostic.code) == ("child.toml", 5, "lora.rank", "E-RANGE")


def test_cycles_are_reported_with_the_chain(tmp_path):
    write(tmp_path, "a.toml", 'extends = "b.toml"\n' + BASE)
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    (diagnostic,) = problems(tmp_path / "a.toml")
    assert "cycle" in diagnostic.message and "a.toml" in diagnostic.message and "b.toml" in diagnostic.message
    assert (diagnostic.path, diagnostic.line, diagnostic.code) == ("extends", 1, "E-EXTENDS")


def test_a_file_that_extends_itself_is_a_cycle(tmp_path):
    path = write(tmp_path, "self.toml", 'extends = "self.toml"\n')
    (diagnostic,) = problems(path)
    assert (diagnostic.path, diagnostic.line, diagnostic.code) == ("extends", 1, "E-EXTENDS")


def test_missing_or_mistyped_base_is_located_at_extends(tmp_path):
    missing = write(tmp_path, "m.toml", '# a comment\nextends = "nope.toml"\n')
    (diagnostic,) = problems(missing)
    assert (diagnostic.path, diagnostic.line, diagnostic.code) == ("extends", 2, "E-EXTENDS")
    typed = write(tmp_path, "t.toml", "extends = 3\n")
    (diagnostic,) = problems(typed)
    assert (diagnostic.path, diagnostic.line, diagnostic.code) == ("extends", 1, "E-EXTENDS")


def test_a_syntax_error_in_the_base_names_the_base(tmp_path):
    write(tmp_path, "base.toml", "[model\n")
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n')
    (diagnostic,) = problems(child)
    assert (Path(diagnostic.file).name, diagnostic.line, diagnostic.code) == ("base.toml", 1, "E-TOML-SYNTAX")


def test_overrides_are_typed_by_the_schema(tmp_path):
    path = write(tmp_path, "job.toml", BASE)
    spec = load_spec(
        path,
        (
            "train.learning_rate=2e-4",
            "train.max_steps=7",
            "model.revision=2024",  # a string field: stays text, not the integer 2024
            "train.gradient_checkpointing=true",
            "data.datasets[0].path=other data.json",
            'lora.target=["q_proj", "v_proj"]',
            "quantization.bits=4",
            "train.method=qlora",
        ),
    ).spec
    assert spec.train.learning_rate == 2e-4 and spec.train.max_steps == 7
    assert spec.model.revision == "2024"
    assert spec.train.gradient_checkpointing is True
    assert spec.data.datasets[0].path == "other data.json"
    assert spec.lora.target == ["q_proj", "v_proj"]
    assert spec.quantization.bits == 4


def test_a_bad_override_is_reported_as_coming_from_the_command_line(tmp_path):
    path = write(tmp_path, "job.toml", BASE)
    (diagnostic,) = problems(path, ("train.learning_rate=fast",))
    assert (diagnostic.file, diagnostic.line, diagnostic.path) == ("--set", 0, "train.learning_rate")
    assert diagnostic.format().startswith("--set: train.learning_rate: [E-TYPE] ")


def test_an_unknown_override_key_gets_did_you_mean(tmp_path):
    path = write(tmp_path, "job.toml", BASE)
    (diagnostic,) = problems(path, ("train.learnig_rate=1e-4",))
    assert (diagnostic.file, diagnostic.path, diagnostic.code) == ("--set", "train.learnig_rate", "E-UNKNOWN-KEY")
    assert diagnostic.hint == "did you mean 'learning_rate'?"


@pytest.mark.parametrize(
    ("override", "path", "code"),
    [
        ("train.learning_rate", "", "E-OVERRIDE"),  # no =
        ("=3", "", "E-OVERRIDE"),
        ("train..seed=1", "", "E-OVERRIDE"),
        ("[0]=1", "", "E-OVERRIDE"),
        ("data.datasets[3].path=x", "data.datasets[3].path", "E-OVERRIDE"),  # the spec has one dataset
        ("lora.rank.value=1", "lora.rank.value", "E-OVERRIDE"),
        ("train.seed.value=1", "train.seed", "E-TYPE"),  # makes train.seed a table
    ],
)
def test_malformed_overrides_say_how_to_write_them(tmp_path, override, path, code):
    (diagnostic,) = problems(write(tmp_path, "job.toml", BASE), (override,))
    assert (diagnostic.file, diagnostic.path, diagnostic.code) == ("--set", path, code)
    assert diagnostic.hint or code != "E-OVERRIDE"


def test_override_can_create_a_missing_table(tmp_path):
    path = write(tmp_path, "job.toml", BASE)
    assert load_spec(path, ("output.dir=runs/sweep-1",)).spec.output.dir == "runs/sweep-1"


def test_a_rule_between_two_sections_is_reported_at_the_key_to_change_naming_the_other(tmp_path):
    path = write(tmp_path, "job.toml", BASE + "\n[quantization]\nbits = 4\n")
    (diagnostic,) = problems(path)
    assert (diagnostic.path, diagnostic.line, diagnostic.code) == ("quantization.bits", 18, "E-CONFLICT")
    assert "train.method is 'lora'" in diagnostic.message and "qlora" in (diagnostic.hint or "")
    # The same rule when the other side comes from the command line: still located at the key to change.
    (overridden,) = problems(write(tmp_path, "ok.toml", BASE), ("quantization.bits=8",))
    assert (overridden.file, overridden.path, overridden.code) == ("--set", "quantization.bits", "E-CONFLICT")


def test_streaming_needs_a_step_count_said_at_the_key(tmp_path):
    text = BASE.replace("max_steps = 100", "epochs = 1.0").replace(
        "[[data.datasets]]", "[data]\nstreaming = true\n\n[[data.datasets]]"
    )
    (diagnostic,) = problems(write(tmp_path, "job.toml", text))
    assert (diagnostic.path, diagnostic.line, diagnostic.code) == ("data.streaming", 6, "E-CONFLICT")
    assert "train.max_steps" in (diagnostic.hint or "")
