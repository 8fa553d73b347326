"""The command line on typer, built lazily: only the command that runs becomes a typer command.

The commands and their arguments stay the declarative records of `ftc.cli.app`; each record turns
into one typer parameter here. typer builds a pydantic adapter per option, so building every
command's options would cost every run; the group below names the commands and builds just the one
invoked (or, for completion, the one being completed).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click as click
from typer._click import exceptions as errors
from typer.core import TyperGroup

from ftc.cli.app import COMMANDS, Arg, Command

DESCRIPTION = "Validate, plan and launch fine-tuning jobs from one TOML spec."


def _name(argument: Arg) -> str:
    if "dest" in argument.options:
        return argument.options["dest"]
    longest = max(argument.flags, key=len)
    return longest.lstrip("-").replace("-", "_")


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type function as a typer parser: its message becomes click's bad-parameter error."""

    def convert(text: Any) -> Any:
        if not isinstance(text, str):  # a default, already converted
            return text
        try:
            return parse(text)
        except argparse.ArgumentTypeError as error:
            raise errors.BadParameter(str(error)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            shown = ", ".join(repr(choice) for choice in choices)
            raise errors.BadParameter(f"invalid choice: {text!r} (choose from {shown})")
        return text

    return convert


def _complete_from(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    return lambda incomplete: [choice for choice in choices if choice.startswith(incomplete)]


def _parameter(argument: Arg) -> inspect.Parameter:
    """One argparse-style record as a typer parameter: the same names, defaults, types and checks."""
    options = dict(argument.options)
    action, nargs, kind = options.get("action"), options.get("nargs"), options.get("type", str)
    help_text = options.get("help")
    settings: dict[str, Any] = {"help": help_text() if callable(help_text) else help_text}
    if "metavar" in options:
        settings["metavar"] = options["metavar"]
    completion = options.get("complete")
    if "choices" in options:
        settings["parser"] = _choice(tuple(options["choices"]))
        completion = completion or _complete_from(tuple(options["choices"]))
    elif kind not in (str, Path, float, int):
        settings["parser"] = _checked(kind)
    if completion is not None:
        settings["autocompletion"] = completion
    positional = not argument.flags[0].startswith("-")
    default = options.get("default")
    if action == "store_true":
        annotation, default = bool, False
    elif action == "store_false":
        annotation, default = bool, True
    elif action == "append":
        annotation, default = list[str] | None, None
    elif nargs == "+":
        annotation, default = list[kind if kind in (str, Path) else str], inspect.Parameter.empty
    else:
        annotation = Any if "parser" in settings else kind
        if positional and nargs != "?":
            default = inspect.Parameter.empty
        elif default is None:
            annotation = annotation | None if annotation is not Any else Any
    if positional:
        if default is not inspect.Parameter.empty:
            settings["show_default"] = False
        info = typer.Argument(**settings)
    else:
        flags = argument.flags
        if action == "store_false":  # only the flag that turns it off, as argparse's store_false
            flags = (f" /{flags[0]}", *flags[1:])
        info = typer.Option(*flags, **settings)
    return inspect.Parameter(
        _name(argument),
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=default,
        annotation=Annotated[annotation, info],
    )


def typer_command(entry: Command) -> click.Command:
    """`entry` as a click command built by typer; it runs the record's function on an argparse-like namespace."""
    appended = [_name(argument) for argument in entry.arguments if argument.options.get("action") == "append"]

    def invoke(**values: Any) -> int:
        from ftc.cli.output import print_error
        from ftc.errors import FtcError

        for name in appended:
            values[name] = list(values[name] or [])
        try:
            return entry.run(argparse.Namespace(command=entry.name, **values)) or 0
        except FtcError as error:
            print_error(error)
            return 1

    invoke.__signature__ = inspect.Signature([_parameter(argument) for argument in entry.arguments])  # type: ignore[attr-defined]
    invoke.__doc__ = entry.summary
    app = typer.Typer(add_completion=False, rich_markup_mode=None)
    app.command(name=entry.name, help=entry.summary)(invoke)
    return typer.main.get_command(app)


class LazyGroup(TyperGroup):
    """Knows every command's name and summary; builds a command's options only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        return typer_command(entry) if entry else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The summaries are the docstrings: listing them must not build every command.
        rows = [(name, entry.summary) for name, entry in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _show_version(value: bool) -> None:
    if value:
        from ftc import __version__

        print(f"ftc {__version__}")
        raise typer.Exit(0)


def group() -> click.Command:
    """The `ftc` group: --version, --install-completion and --show-completion, and the lazy commands."""
    app = typer.Typer(cls=LazyGroup, name="ftc", help=DESCRIPTION, rich_markup_mode=None)

    @app.callback()
    def top(
        version: Annotated[
            bool, typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version.")
        ] = False,
    ) -> None:
        pass

    return typer.main.get_command(app)


def _usage_message(error: errors.UsageError, argv: list[str]) -> str:
    """argparse's wording, which scripts and the tests rely on, for click's usage errors."""
    message = error.format_message()
    if isinstance(error, errors.NoSuchOption):
        rest = argv[argv.index(error.option_name) :] if error.option_name in argv else [error.option_name]
        return f"unrecognized arguments: {' '.join(rest)}"
    if isinstance(error, errors.MissingParameter) and error.param is not None:
        return f"the following arguments are required: {error.param.metavar or error.param.name}"
    if isinstance(error, errors.BadParameter) and error.param is not None:
        names = "/".join(error.param.opts) if error.param.param_type_name == "option" else error.param.name
        return f"argument {names}: {error.message}"
    if message.startswith("No such command"):
        shown = ", ".join(repr(name) for name in COMMANDS)
        command = message.split("'")[1] if "'" in message else message
        return f"argument COMMAND: invalid choice: {command!r} (choose from {shown})"
    return message


def run(argv: list[str]) -> int:
    """Parse and run one command; a usage mistake is exit 2, a user error a message and exit 1."""
    top = group()
    if not argv and "_FTC_COMPLETE" not in os.environ:  # the shell asks for completions with no arguments
        with top.make_context("ftc", ["--help"], resilient_parsing=True) as ctx:
            print(top.get_help(ctx))
        return 2
    try:
        result = top.main(argv, prog_name="ftc", standalone_mode=False)
    except errors.UsageError as error:
        usage = error.ctx.get_usage() if error.ctx is not None else "Usage: ftc COMMAND"
        print(f"usage: {usage.removeprefix('Usage: ')}", file=sys.stderr)
        print(f"ftc: error: {_usage_message(error, argv)}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0
