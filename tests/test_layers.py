"""The layers hold: `lint-imports` checks pyproject.toml's contracts (one-way layers; no heavy library below
the runtime; lazy imports inside functions count) from the suite, so a wrong import fails here first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(root)}  # the tree under `root`, ahead of the installed ftc
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layer_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def copy_of_the_tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "ftc", tmp_path / "ftc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_lazy_torch_import_in_the_compiler_breaks_a_contract(tmp_path):
    root = copy_of_the_tree(tmp_path)
    (root / "ftc" / "compiler" / "sneaky.py").write_text("def peak():\n    import torch\n\n    return torch\n")
    result = lint_imports(root)
    assert result.returncode == 1
    assert "ftc.compiler is not allowed to import torch" in result.stdout
    assert "ftc.compiler.sneaky -> torch" in result.stdout


def test_a_target_that_imports_the_runtime_breaks_the_layers(tmp_path):
    root = copy_of_the_tree(tmp_path)
    (root / "ftc" / "targets" / "shortcut.py").write_text("from ftc.runtime.stages import sft  # noqa: F401\n")
    result = lint_imports(root)
    assert result.returncode == 1
    assert "ftc.targets is not allowed to import ftc.runtime" in result.stdout


def test_the_runtime_keeps_its_rooms():
    """Its top level stays small: what belongs to data, the model, ppo, the process or a stage lives in that room."""
    runtime = ROOT / "ftc" / "runtime"
    modules = sorted(path.name for path in runtime.glob("*.py") if path.name != "__init__.py")
    assert len(modules) <= 12, modules
    rooms = {path.name for path in runtime.iterdir() if (path / "__init__.py").is_file()}
    assert {"data", "model", "ppo", "distributed", "stages"} <= rooms
