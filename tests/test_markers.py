"""Every test that trains a model carries `slow`, so `-m "not slow"` is the quick suite the README promises.

Read from the tests' source: a test calling one of the helpers that train (outside a `pytest.raises`
block, where the run is refused before anything loads) must be marked, itself or by its module.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The helpers that train the tiny model: in-process stages, run folders, and launched run scripts.
TRAINING_HELPERS = {"train_stage", "train_in_process", "launched", "train"}  # train: Trainer.train()


def _marked_slow(decorators: list[ast.expr]) -> bool:
    return any("mark.slow" in ast.unparse(decorator) for decorator in decorators)


def _training_calls(test: ast.FunctionDef) -> set[str]:
    refused = {
        id(node)
        for block in ast.walk(test)
        if isinstance(block, ast.With) and any("raises" in ast.unparse(item.context_expr) for item in block.items)
        for node in ast.walk(block)
    }
    return {
        name
        for node in ast.walk(test)
        if isinstance(node, ast.Call) and id(node) not in refused
        for name in [node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")]
        if name in TRAINING_HELPERS
    }


def unmarked_training_tests(root: Path = TESTS) -> list[str]:
    found = []
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_slow = any(
            isinstance(node, ast.Assign)
            and any(getattr(target, "id", "") == "pytestmark" for target in node.targets)
            and "slow" in ast.unparse(node.value)
            for node in tree.body
        )
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and not module_slow:
                if not _marked_slow(node.decorator_list) and _training_calls(node):
                    found.append(f"{path.relative_to(root.parent)}::{node.name}")
    return found


def test_every_test_that_trains_is_marked_slow():
    assert unmarked_training_tests() == []


def test_the_check_finds_an_unmarked_training_test(tmp_path):
    (tmp_path / "test_example.py").write_text(
        "import pytest\n\n"
        "def test_trains(tmp_path):\n    train_stage(tmp_path)\n\n"
        "@pytest.mark.slow\ndef test_marked(tmp_path):\n    train_stage(tmp_path)\n\n"
        "def test_refused(tmp_path):\n    with pytest.raises(ValueError):\n        train_stage(tmp_path)\n",
        encoding="utf-8",
    )
    assert unmarked_training_tests(tmp_path) == [f"{tmp_path.name}/test_example.py::test_trains"]
