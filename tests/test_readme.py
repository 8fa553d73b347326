"""The README's first two commands are what a new user runs, and what CI runs: keep them in step."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Monitor clients whose own servers the tests cannot reach (the tests mock them), and the CUDA-only kernel and
# quantization packages the CPU tests cannot install (their plans, arguments and images are tested): not pinned.
UNTESTED_EXTRAS = {"wandb", "mlflow", "liger", "flash", "eetq", "gptq", "awq", "aqlm"}


def readme_commands() -> list[str]:
    first_block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first_block, "the README must open with a bash block of commands"
    return [line for line in first_block[1].splitlines() if line.strip()]


def test_readme_opens_with_setup_and_test_commands():
    setup, test = readme_commands()
    assert "pip install -c constraints.txt torch==2.13.0" in setup and setup.endswith("ftc quickstart")
    assert "pytest" in test


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    setup, test = readme_commands()
    assert setup in ci
    assert test.split("&& ")[-1] in ci  # CI has activated the venv already


def pip_installs(command: str) -> list[str]:
    return [part.strip() for part in command.split("&&") if part.strip().startswith("pip install")]


def test_every_install_of_the_readme_and_ci_goes_through_the_tested_constraints():
    setup, _ = readme_commands()
    installs = pip_installs(setup)
    assert len(installs) == 2  # torch first, on its own; then ftc with its extras
    assert all("-c constraints.txt" in install for install in installs)
    ci_installs = [
        install for line in (ROOT / ".ci" / "run").read_text().splitlines() for install in pip_installs(line)
    ]
    assert ci_installs == installs


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_root_constraints_file_is_the_one_the_package_ships():
    assert (ROOT / "constraints.txt").resolve() == (ROOT / "ftc" / "constraints.txt").resolve()


def test_every_declared_dependency_is_pinned_within_its_bounded_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned_versions()
    declared = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in UNTESTED_EXTRAS:
            declared += requirements
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{text}: no upper bound"
        assert name in pins, f"{text} is not in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{text} excludes the tested {pins[name]}"
        # The bound sits at the next minor release after the tested one: nothing newer is admitted untested.
        upper = Version(next(spec.version for spec in requirement.specifier if spec.operator == "<"))
        tested = Version(pins[name])
        assert (upper.major, upper.minor) in ((tested.major, tested.minor + 1), (tested.major + 1, 0)), text
