"""`ftc validate --format github`: workflow commands that GitHub turns into annotations on the diff."""

import json
import re

from ftc.cli.github import command, escape_data, escape_property
from tests.commands import ftc
from tests.specs import VALID, replace

# The runner's reading of one command line, written from its documented syntax rather than from our code.
COMMAND = re.compile(r"^::(?P<kind>\w+)(?: (?P<properties>[^:]*))?::(?P<message>.*)$")
DECODE = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}


def decode(text: str) -> str:
    return re.sub(r"%25|%0D|%0A|%3A|%2C", lambda match: DECODE[match[0]], text)


def parse(line: str) -> tuple[str, dict[str, str], str]:
    match = COMMAND.match(line)
    assert match, line
    pairs = (item.split("=", 1) for item in (match["properties"] or "").split(",") if item)
    return match["kind"], {name: decode(value) for name, value in pairs}, decode(match["message"])


def test_data_escapes_percent_first_and_line_breaks():
    assert escape_data("50% of\r\nit") == "50%25 of%0D%0Ait"
    assert escape_data("%0A stays text") == "%250A stays text"  # not read back as a line break
    assert escape_data("a: b, c") == "a: b, c"  # the message runs to the end of the line


def test_properties_also_escape_the_separators():
    assert escape_property("C:\\specs\\a,b.toml") == "C%3A\\specs\\a%2Cb.toml"
    assert escape_property("x%\ny") == "x%25%0Ay"
    line = command("warning", "two\nlines", file="a,b:c.toml", line=3, col=None, title="k")
    assert line == "::warning file=a%2Cb%3Ac.toml,line=3,title=k::two%0Alines"
    assert parse(line) == ("warning", {"file": "a,b:c.toml", "line": "3", "title": "k"}, "two\nlines")


def test_every_mistake_of_every_file_is_one_annotation_at_its_place(tmp_path):
    text = replace(VALID, "rank = 8", "rnak = 8")
    text = replace(text, "global_batch_size = 16", 'global_batch_size = "16"')
    text = replace(text, 'format = "alpaca"', 'format = "alpacca"')
    (tmp_path / "bad.toml").write_text(text)
    (tmp_path / "broken.toml").write_text("[model\n")
    (tmp_path / "good.toml").write_text(VALID)
    files = ["bad.toml", "broken.toml", "good.toml", "nope.toml"]

    result = ftc("validate", *files, "--format", "github", cwd=tmp_path)
    as_json = json.loads(ftc("validate", *files, "--format", "json", cwd=tmp_path).stdout)

    assert result.returncode == 1
    assert "5 problems in 3 of 4 file(s)" in result.stderr and "Traceback" not in result.stderr
    annotations = [parse(line) for line in result.stdout.splitlines()]
    located = [
        (kind, where["file"], where.get("line"), where.get("col"), where["title"]) for kind, where, _ in annotations
    ]
    assert located == [
        ("error", "bad.toml", "10", "1", "data.datasets[0].format"),
        ("error", "bad.toml", "15", "1", "train.global_batch_size"),
        ("error", "bad.toml", "21", "1", "lora.rnak"),
        ("error", "broken.toml", "1", "7", "E-TOML-SYNTAX"),
        ("error", "nope.toml", None, None, "E-FILE"),  # no line known: the annotation sits on the file
    ]
    # The same problems as the JSON contract, message, code and hint each.
    for (_, _, message), diagnostic in zip(annotations, as_json["diagnostics"], strict=True):
        assert message == f"[{diagnostic['code']}] {diagnostic['message']} (hint: {diagnostic['hint']})"
    assert annotations[2][2] == "[E-UNKNOWN-KEY] unknown key 'rnak' (hint: did you mean 'rank'?)"


def test_a_valid_spec_prints_no_command_and_exits_zero(tmp_path):
    (tmp_path / "job.toml").write_text(VALID)
    result = ftc("validate", "job.toml", "--format", "github", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert "ok: 1 spec file valid" in result.stderr


def test_a_file_name_with_separators_and_a_many_line_message_stay_one_command(tmp_path):
    (tmp_path / "a,b:c.toml").write_text(VALID)
    data = tmp_path / "data" / "alpaca_en.json"
    data.parent.mkdir()
    data.write_text(json.dumps([{"instruction": "x"}, {"instruction": "y"}]))
    result = ftc("validate", "--data", "--format", "github", "a,b:c.toml", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stdout.splitlines()  # the data error lists its records on lines of their own
    kind, where, message = parse(line)
    assert (kind, where) == ("error", {"file": "a,b:c.toml", "title": "data"})
    assert message.startswith("2 bad records in the data") and "\n  " in message and "(hint: " in message
