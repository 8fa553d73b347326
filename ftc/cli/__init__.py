"""The `ftc` command.

`ftc validate` runs on every spec in users' CI, so its plain form skips typer and rich (~80 ms of
imports) and calls the same function the typer command does. Anything else, `--help` included,
goes through the full app.
"""

from __future__ import annotations

import sys


def _fast_validate(args: list[str]) -> int | None:
    files: list[str] = []
    output_format = "text"
    rest = iter(args)
    for arg in rest:
        if arg in ("--format", "-f"):
            output_format = next(rest, "")
        elif arg.startswith("--format="):
            output_format = arg.partition("=")[2]
        elif arg.startswith("-"):
            return None  # an option only the full app knows (or --help)
        else:
            files.append(arg)
    if not files or output_format not in ("text", "json"):
        return None
    _skip_pydantic_plugin_discovery()
    from ftc.cli.validate import validate_files

    return validate_files(files, output_format)


def _skip_pydantic_plugin_discovery() -> None:
    """ftc's spec models use no pydantic plugins, but discovering them imports importlib.metadata,
    about 20 ms of validate's 150 ms budget. In this short-lived process nothing else uses pydantic,
    so an empty plugin list is the truth, not a shortcut. Should pydantic move its loader, this is
    simply never consulted."""
    import types

    loader = types.ModuleType("pydantic.plugin._loader")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules.setdefault("pydantic.plugin._loader", loader)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["validate"]:
        code = _fast_validate(args[1:])
        if code is not None:
            sys.exit(code)
    from ftc.cli.app import run

    run()
