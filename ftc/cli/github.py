"""GitHub Actions workflow commands: each problem as an `::error` line, which the runner turns into an
annotation on the pull request's diff at the file, line and column it names."""

from __future__ import annotations

from ftc.spec import Diagnostic

# The runner reads a command up to the end of its line, and a property up to the next `,` (its value
# after the first `:`): these characters in our text would cut it short, so they go percent-encoded,
# which the runner decodes before showing them. `%` itself first, or it would encode the others twice.
_DATA = (("%", "%25"), ("\r", "%0D"), ("\n", "%0A"))
_PROPERTY = (*_DATA, (":", "%3A"), (",", "%2C"))


def escape_data(text: str) -> str:
    for raw, encoded in _DATA:
        text = text.replace(raw, encoded)
    return text


def escape_property(text: str) -> str:
    for raw, encoded in _PROPERTY:
        text = text.replace(raw, encoded)
    return text


def command(kind: str, message: str, **properties: str | int | None) -> str:
    """`::KIND prop=value,…::message`; a property that is None or 0 (no line known) is left out."""
    shown = ",".join(f"{name}={escape_property(str(value))}" for name, value in properties.items() if value)
    return f"::{kind}{' ' + shown if shown else ''}::{escape_data(message)}"


def diagnostic_command(diagnostic: Diagnostic) -> str:
    # The key path is the title a reviewer scans; a file-level problem (syntax, unreadable) has none, so its code is.
    hint = f" (hint: {diagnostic.hint})" if diagnostic.hint else ""
    return command(
        "error",
        f"[{diagnostic.code}] {diagnostic.message}{hint}",
        file=diagnostic.file,
        line=diagnostic.line,
        col=diagnostic.column if diagnostic.line else None,
        title=diagnostic.path or str(diagnostic.code),
    )
