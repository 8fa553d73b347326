"""User errors: what is wrong, where, and how to fix it. The CLI prints them without a traceback."""

from __future__ import annotations


class FtcError(Exception):
    """A mistake the user can fix; carries a hint on how."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message + (f" (hint: {self.hint})" if self.hint else "")


class RuntimeUserError(Exception):
    """Something the user can fix in the spec or the data (bad record, missing file, unknown template), found
    while reading data or running: the runtime prints it with its hint, never a traceback."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})"
