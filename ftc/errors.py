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
