"""The README's first two commands are what a new user runs, and what CI runs: keep them in step."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    first_block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first_block, "the README must open with a bash block of commands"
    return [line for line in first_block[1].splitlines() if line.strip()]


def test_readme_opens_with_setup_and_test_commands():
    setup, test = readme_commands()
    assert "pip install torch==2.13.0" in setup and setup.endswith("ftc quickstart")
    assert "pytest" in test


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    setup, test = readme_commands()
    assert setup in ci
    assert test.split("&& ")[-1] in ci  # CI has activated the venv already
