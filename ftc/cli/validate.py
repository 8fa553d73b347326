"""`ftc validate`: check spec files and report every problem in each, located. Kept light for CI."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ftc.spec import Diagnostic, SpecError, load_spec


def expand(patterns: list[str]) -> list[str]:
    """Shell-style globs for shells (and CI YAML) that do not expand them; literal names stay."""
    files: list[str] = []
    for pattern in patterns:
        matches = _glob(pattern) if any(ch in pattern for ch in "*?[") else []
        files.extend(matches or [pattern])
    return files


def _glob(pattern: str) -> list[str]:
    import glob

    return sorted(glob.glob(pattern, recursive=True))


def validate_files(patterns: list[str], output_format: str = "text", overrides: Sequence[str] = ()) -> int:
    files = expand(patterns)
    problems: dict[str, list[Diagnostic]] = {}
    for file in files:
        try:
            load_spec(file, overrides)
        except SpecError as error:
            problems[file] = error.diagnostics
    if output_format == "json":
        import json

        report = {
            "files": len(files),
            "valid": len(files) - len(problems),
            "diagnostics": [d.to_dict() for found in problems.values() for d in found],
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for found in problems.values():
            for diagnostic in found:
                print(diagnostic.format())
        count = sum(len(found) for found in problems.values())
        if problems:
            print(
                f"{count} problem{'s' if count != 1 else ''} in {len(problems)} of {len(files)} file(s)",
                file=sys.stderr,
            )
        else:
            print(f"ok: {len(files)} spec file{'s' if len(files) != 1 else ''} valid", file=sys.stderr)
    return 1 if problems else 0
