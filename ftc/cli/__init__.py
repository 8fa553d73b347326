"""The `ftc` command."""

from __future__ import annotations

import sys

# Commands that users run on every spec in CI, where start-up is most of the time.
_QUICK_COMMANDS = ("validate", "plan")


def _skip_pydantic_plugin_discovery() -> None:
    """ftc's spec models use no pydantic plugins, but discovering them imports importlib.metadata and
    scans every installed package, about 30 ms of validate's 150 ms budget. In this short-lived process
    nothing else uses pydantic, so an empty plugin list is the truth, not a shortcut. Should pydantic
    move its loader, this is simply never consulted; tests/cli/test_startup.py fails then, and this can go."""
    import types

    loader = types.ModuleType("pydantic.plugin._loader")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules.setdefault("pydantic.plugin._loader", loader)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] and args[0] in _QUICK_COMMANDS:
        _skip_pydantic_plugin_discovery()
    from ftc.cli.typer_app import run

    sys.exit(run(args))
