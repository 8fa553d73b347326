"""The one error the runtime shows its user: a message and a hint, never a traceback."""

from __future__ import annotations


class RuntimeUserError(Exception):
    """Something the user can fix in the spec or the data (bad record, missing file, unknown template)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})"
