"""Jinja2 rendering of the files under ftc/templates, with shell quoting as explicit filters.

Autoescape is off (these are shell scripts, not HTML); every value that reaches a command line goes
through `q` (one word) or `qjoin` (a list of words), so spaces, quotes, `$(…)` and newlines in
names cannot break a script or inject into it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class FromShell:
    """A word the script fills in as it runs, from variables it set itself (e.g. "$MASTER_ADDR:$MASTER_PORT").

    Written in double quotes, so it expands to one word; only $NAME, letters, digits and `:._-` may appear.
    """

    text: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"(\$[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9:._-])+", self.text):
            raise ValueError(f"not a plain shell expansion: {self.text!r}")


def _quote(value: Any) -> str:
    if isinstance(value, FromShell):
        return f'"{value.text}"'
    # `$` and backquotes are written outside the single quotes, escaped: the same word to bash, and shellcheck
    # no longer reads them as expansions someone forgot to double-quote (SC2016).
    quoted = shlex.quote(str(value))
    for character in "$`":
        quoted = quoted.replace(character, f"'\\{character}'")
    return quoted.removeprefix("''").removesuffix("''") or "''"


def _quote_join(values: Any) -> str:
    return " ".join(_quote(v) for v in values)


def _comment(value: Any) -> str:
    """Safe inside a `#` comment: a newline in a value must not start a new script line."""
    return " ".join(str(value).split())


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(q=_quote, qjoin=_quote_join, comment=_comment)
    return env


def render(template_name: str, **values: Any) -> str:
    return environment().get_template(template_name).render(**values)
