"""The quick commands start without pydantic's plugin discovery (`ftc.cli`): under the pinned pydantic,
discovery imports importlib.metadata and scans every installed distribution, an eighth of a validate's
start-up when measured. Each run here is a process of its own, as users start ftc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.specs import VALID, replace

PROBE = """
import json, sys
import ftc.cli

spec, mode = sys.argv[1], sys.argv[2]
asked = []
if mode == "counted":  # the stand-in, installed early so that its calls are counted
    ftc.cli._skip_pydantic_plugin_discovery()
    sys.modules["pydantic.plugin._loader"].get_plugins = lambda: asked.append(True) or ()
elif mode == "without":
    ftc.cli._skip_pydantic_plugin_discovery = lambda: None
sys.argv = ["ftc", "validate", spec]
try:
    ftc.cli.main()
except SystemExit as exit:
    status = exit.code
loader = sys.modules.get("pydantic.plugin._loader")
print(json.dumps({
    "status": status,
    "loader_file": getattr(loader, "__file__", None),
    "importlib_metadata": "importlib.metadata" in sys.modules,
    "stand_in_asked": bool(asked),
}))
"""


def start(spec: Path, mode: str) -> tuple[dict, list[str]]:
    """`ftc validate SPEC` as shipped, with the stand-in counted ("counted"), or without it ("without")."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(spec), mode], capture_output=True, text=True)
    *printed, report = result.stdout.splitlines()
    return json.loads(report), printed


@pytest.fixture
def specs(tmp_path) -> tuple[Path, Path]:
    valid, broken = tmp_path / "job.toml", tmp_path / "broken.toml"
    valid.write_text(VALID)
    broken.write_text(replace(replace(VALID, "rank = 8", "rank = 0"), 'stage = "sft"', 'stage = "sfft"'))
    return valid, broken


def test_without_the_stand_in_pydantic_imports_its_plugin_loader_and_importlib_metadata(specs):
    report, _ = start(specs[0], "without")
    assert report["status"] == 0
    # The module the stand-in replaces is still where the pinned pydantic looks: were it moved, the
    # stand-in would save nothing, and this says so.
    assert report["loader_file"] and Path(report["loader_file"]).parts[-3:] == ("pydantic", "plugin", "_loader.py")
    assert report["importlib_metadata"]


def test_validate_puts_the_stand_in_where_pydantic_asks_and_imports_no_package_metadata(specs):
    report, _ = start(specs[0], "shipped")
    assert report["status"] == 0 and report["loader_file"] is None
    assert not report["importlib_metadata"]
    assert start(specs[0], "counted")[0]["stand_in_asked"]


def test_with_the_stand_in_pydantic_validates_as_without_it(specs):
    report, printed = start(specs[1], "shipped")
    assert report["status"] == 1 and report["loader_file"] is None
    assert printed == start(specs[1], "without")[1]
    assert [line.split()[1:3] for line in printed] == [["train.stage:", "[E-ENUM]"], ["lora.rank:", "[E-RANGE]"]]
