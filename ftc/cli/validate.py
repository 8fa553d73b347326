"""`ftc validate`: check spec files and report every problem in each, located. Kept light for CI."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftc.spec import Diagnostic, SpecError, load_spec
from ftc.spec.loader import LoadedSpec

if TYPE_CHECKING:
    from ftc.records.check import DataCheck


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


def validate_files(
    patterns: list[str], output_format: str = "text", overrides: Sequence[str] = (), data: bool = False
) -> int:
    """With `data`, every record of each valid spec's local datasets is read and checked too, as `ftc launch` does."""
    files = expand(patterns)
    problems: dict[str, list[Diagnostic]] = {}
    data_checks: dict[str, DataCheck] = {}
    for file in files:
        try:
            loaded = load_spec(file, overrides)
        except SpecError as error:
            problems[file] = error.diagnostics
            continue
        if data:
            data_checks[file] = check_spec_data(loaded)
    bad_data = {file: check for file, check in data_checks.items() if check.problems}
    if output_format == "json":
        import json

        report = {
            "files": len(files),
            "valid": len(files) - len(problems),
            "diagnostics": [d.to_dict() for found in problems.values() for d in found],
        }
        if data:
            report["data"] = [{"spec": file, **check.to_dict()} for file, check in data_checks.items()]
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif output_format == "github":
        from ftc.cli.github import command, diagnostic_command

        for found in problems.values():
            for diagnostic in found:
                print(diagnostic_command(diagnostic))
        for file, check in data_checks.items():
            if check.problems:
                error = check.error()
                print(command("error", f"{error.message} (hint: {error.hint})", file=file, title="data"))
            else:
                print(f"{file}: {check.summary()}", file=sys.stderr)
        _print_tally(files, problems, data_checks)
    else:
        for found in problems.values():
            for diagnostic in found:
                print(diagnostic.format())
        for file, check in data_checks.items():
            if check.problems:
                error = check.error()
                print(f"{file}: {error.message}\n  hint: {error.hint}")
            else:
                print(f"{file}: {check.summary()}", file=sys.stderr)
        _print_tally(files, problems, data_checks)
    return 1 if problems or bad_data else 0


def _print_tally(files: list[str], problems: dict[str, list[Diagnostic]], data_checks: dict[str, DataCheck]) -> None:
    bad_data = {file: check for file, check in data_checks.items() if check.problems}
    count = sum(len(found) for found in problems.values()) + sum(check.problems for check in bad_data.values())
    if problems or bad_data:
        failed = len(problems) + len(bad_data)
        print(f"{count} problem{'s' if count != 1 else ''} in {failed} of {len(files)} file(s)", file=sys.stderr)
    else:
        print(f"ok: {len(files)} spec file{'s' if len(files) != 1 else ''} valid", file=sys.stderr)


def check_spec_data(loaded: LoadedSpec) -> DataCheck:
    # Paths anchored as `ftc launch` anchors them; the check imports no torch, so CI needs only ftc.
    from ftc.models.lookup import images_refused
    from ftc.records.check import check_data
    from ftc.spec.resolve import resolve_paths

    spec = resolve_paths(loaded.spec, loaded.base_dir, is_local=Path.exists)
    return check_data(spec.data, stage=spec.train.stage, model_no_images=images_refused(spec))
