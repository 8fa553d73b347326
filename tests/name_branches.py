"""Finds where ftc's source decides by a stage's or method's name instead of asking its record.

A branch on a name is a comparison with the name as a string (`stage == "ppo"`, `method in ("lora",
"qlora")`, a `case "kto":`); a table by name is a literal that holds two or more of the names (a tuple of
stages, a dict keyed by method). The spec language's `Literal[...]` value sets are left to their own test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "ftc"


@dataclass(frozen=True)
class Use:
    path: str  # relative to the repository root
    line: int
    names: tuple[str, ...]
    how: str  # "branch" | "table"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.how} on {', '.join(self.names)}"


def uses_of(names: set[str], allowed: dict[str, set[str]]) -> list[Use]:
    """Every branch on, or table of, `names` in ftc's source; `allowed` maps a file (relative to the
    repository root) to the names it may decide by."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE.parent).as_posix()
        own = allowed.get(relative, set())
        for use in uses_in(ast.parse(path.read_text(encoding="utf-8")), names, relative):
            if not set(use.names) <= own:
                found.append(use)
    return found


def uses_in(tree: ast.AST, names: set[str], path: str) -> Iterator[Use]:
    literal_sets = {id(node.slice) for node in ast.walk(tree) if _is_literal_subscript(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            named = [name for operand in (node.left, *node.comparators) for name in _strings(operand) if name in names]
            if named:
                yield Use(path, node.lineno, tuple(dict.fromkeys(named)), "branch")
        elif isinstance(node, ast.match_case):
            named = [n.value.value for n in ast.walk(node.pattern) if isinstance(n, ast.MatchValue)]
            named = [name for name in named if name in names]
            if named:
                yield Use(path, node.pattern.lineno, tuple(named), "branch")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) and id(node) not in literal_sets:
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            named = [item.value for item in items if isinstance(item, ast.Constant) and item.value in names]
            if len(set(named)) >= 2:
                yield Use(path, node.lineno, tuple(dict.fromkeys(named)), "table")


def _strings(operand: ast.expr) -> list[str]:
    if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
        return [operand.value]
    if isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
        return [item.value for item in operand.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)]
    return []


def _is_literal_subscript(node: ast.AST) -> bool:
    if not isinstance(node, ast.Subscript):
        return False
    value = node.value
    return (isinstance(value, ast.Name) and value.id == "Literal") or (
        isinstance(value, ast.Attribute) and value.attr == "Literal"
    )
