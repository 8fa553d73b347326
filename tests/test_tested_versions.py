"""The tested set (ftc/constraints.txt) against installed versions, and the runtime's one-line warning."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from ftc.install.tested_versions import (
    MISSING,
    OK,
    OTHER_VERSION,
    Pin,
    compare,
    installed_version,
    normalise,
    parse_constraints,
    pinned,
    read_tested_set,
    untested_warning,
)


def lookup(versions: dict[str, str]):
    """An environment as a table, keyed like the metadata lookup: by any spelling of the name."""
    table = {normalise(name): version for name, version in versions.items()}
    return lambda name: table.get(normalise(name))


def test_the_file_is_parsed_to_pins_comments_and_blank_lines_skipped():
    text = "# the tested set\n\naccelerate==1.16.0\nJinja2 == 3.1.6  # templates\ntomli_w==1.2.0\n"
    assert parse_constraints(text) == (Pin("accelerate", "1.16.0"), Pin("Jinja2", "3.1.6"), Pin("tomli_w", "1.2.0"))
    with pytest.raises(ValueError, match=r"constraints.txt:2: expected name==version, got 'torch>=2.6'"):
        parse_constraints("# comment\ntorch>=2.6\n")


def test_the_shipped_set_pins_the_training_stack_once_each():
    pins = read_tested_set()
    names = [normalise(pin.name) for pin in pins]
    assert len(names) == len(set(names))
    assert {"torch", "transformers", "trl", "peft", "accelerate", "datasets", "jinja2", "tomli-w"} <= set(names)
    assert pinned(pins, ["jinja2", "tomli-w", "not-pinned"]) == (Pin("Jinja2", "3.1.6"), Pin("tomli_w", "1.2.0"))


def test_a_local_label_is_the_same_release_and_names_match_in_any_spelling():
    pins = (Pin("torch", "2.13.0"), Pin("Jinja2", "3.1.6"), Pin("tomli_w", "1.2.0"), Pin("accelerate", "1.16.0"))
    found = compare(pins, lookup({"torch": "2.13.0+cpu", "jinja2": "3.1.6", "tomli-w": "1.3.0"}))
    assert [(check.name, check.installed, check.status) for check in found] == [
        ("torch", "2.13.0+cpu", OK),
        ("Jinja2", "3.1.6", OK),
        ("tomli_w", "1.3.0", OTHER_VERSION),
        ("accelerate", None, MISSING),
    ]
    assert found[2].describe() == "tomli_w 1.3.0 (tested 1.2.0)"


def test_the_real_lookup_reads_metadata():
    assert installed_version("Jinja2") == installed_version("jinja2") is not None
    assert installed_version("no-such-package-for-ftc") is None


def test_the_warning_is_one_line_naming_only_the_training_libraries_that_differ():
    installed = {pin.name: pin.version for pin in read_tested_set()}
    assert untested_warning(installed=lookup(installed)) is None
    installed |= {"accelerate": "1.17.0", "transformers": "5.25.0", "numpy": "1.0.0"}  # numpy: not the stack
    del installed["bitsandbytes"]  # absent: the run names it itself if it needs it
    line = untested_warning(installed=lookup(installed))
    assert line == (
        "warning: untested library versions: transformers 5.25.0 (tested 5.24.0), "
        "accelerate 1.17.0 (tested 1.16.0) — ftc doctor"
    )


def test_the_runtime_prints_the_warning_once_on_stderr_before_the_stage(tmp_path, monkeypatch, capsys, run_folder):
    import ftc.runtime.__main__ as runtime
    from ftc.stages import STAGES
    from tests.tiny_runs import tiny_spec

    (tmp_path / "stand_in_stage.py").write_text("def run(folder):\n    print('stage ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(runtime, "STAGES", {"sft": dataclasses.replace(STAGES["sft"], module="stand_in_stage")})
    monkeypatch.setattr(runtime, "seed_all", lambda seed: None)  # transformers' set_seed: nothing to test here
    installed = {pin.name: pin.version for pin in read_tested_set()} | {"peft": "0.22.0"}
    monkeypatch.setattr(runtime, "untested_warning", functools.partial(untested_warning, installed=lookup(installed)))
    run_dir = run_folder(tiny_spec(tmp_path / "run", tmp_path / "model", tmp_path / "data.json"))

    runtime.run(str(run_dir))
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["warning: untested library versions: peft 0.22.0 (tested 0.21.2) — ftc doctor"]
    assert captured.out.splitlines()[0].startswith("ftc runtime · sft") and "stage ran" in captured.out
