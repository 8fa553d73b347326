"""The `ftc-lock-verify` pre-commit hook: `ftc verify` on each passed spec that has a lock beside it.

pre-commit passes every staged file its pattern matches, specs and locks alike; a spec without a lock
was never locked, so it is not this hook's to judge (`ftc-validate` checks it), and a staged lock stands
for its spec, so that editing a lock by hand is caught too."""

from __future__ import annotations

import sys
from pathlib import Path

LOCK_SUFFIX = ".lock"


def locked_specs(files: list[str]) -> list[Path]:
    """The specs among (or named by the locks among) `files` that have a lock, each once, in order."""
    specs: dict[Path, None] = {}
    for name in files:
        path = Path(name)
        spec = path.with_name(path.name.removesuffix(LOCK_SUFFIX)) if path.name.endswith(LOCK_SUFFIX) else path
        if spec.is_file() and spec.with_name(spec.name + LOCK_SUFFIX).is_file():
            specs[spec] = None
    return list(specs)


def verify_all(files: list[str]) -> int:
    from ftc.cli.typer_app import run

    # Every spec is verified, not just up to the first drift: one commit should show all that needs locking again.
    failed = [spec for spec in locked_specs(files) if run(["verify", str(spec)]) != 0]
    return 1 if failed else 0


def main() -> None:
    sys.exit(verify_all(sys.argv[1:]))


if __name__ == "__main__":
    main()
