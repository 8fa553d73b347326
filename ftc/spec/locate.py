"""Where each key of a TOML document was written.

tomllib returns values without positions, so errors could not say which line to fix. This is a
small scanner over text that tomllib has already accepted: it follows table headers, arrays of
tables, dotted keys, inline tables and arrays, and records the (line, column) of every key path.
Paths use the same shape as pydantic's error locations: strings for keys, ints for array items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

KeyPath = tuple[str | int, ...]
_Where = TypeVar("_Where")

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Origin:
    """Where a value of a composed spec was written: a file and line, or the command line (line 0)."""

    file: str
    line: int
    column: int


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.positions: dict[KeyPath, Position] = {}
        self._array_tables: dict[KeyPath, int] = {}  # path as written → index of its last [[table]]

    # -- low-level reading -------------------------------------------------------------
    def _peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.text[j] if j < len(self.text) else ""

    def _position(self) -> Position:
        line = self.text.count("\n", 0, self.i) + 1
        column = self.i - (self.text.rfind("\n", 0, self.i) + 1) + 1
        return Position(line, column)

    def _skip_blank(self, newlines: bool) -> None:
        """Skip spaces, comments and (if asked) newlines."""
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.i += 1
            elif ch == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def _read_string(self) -> str:
        quote = self._peek()
        if self.text.startswith(quote * 3, self.i):
            end = self.text.find(quote * 3, self.i + 3)
            while quote == '"' and end > 0 and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            # A closing run may be up to five quotes long: the extra ones belong to the content.
            end += 3
            while self.text.startswith(quote, end):
                end += 1
            value = self.text[self.i + 3 : end - 3]
            self.i = end
            return value
        j = self.i + 1
        chars: list[str] = []
        while j < len(self.text) and self.text[j] != quote:
            if quote == '"' and self.text[j] == "\\":
                chars.append(self.text[j : j + 2])
                j += 2
                continue
            chars.append(self.text[j])
            j += 1
        self.i = j + 1
        raw = "".join(chars)
        return _unescape(raw) if quote == '"' else raw

    def _read_key(self) -> tuple[list[str], Position]:
        """A possibly dotted key; returns its parts and where it starts."""
        start = self._position()
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            if self._peek() in "\"'":
                parts.append(self._read_string())
            else:
                j = self.i
                while j < len(self.text) and self.text[j] in _BARE_KEY_CHARS:
                    j += 1
                parts.append(self.text[self.i : j])
                self.i = j
            self._skip_blank(newlines=False)
            if self._peek() == ".":
                self.i += 1
                continue
            return parts, start

    # -- structure ---------------------------------------------------------------------
    def scan(self) -> dict[KeyPath, Position]:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self.i >= len(self.text):
                return self.positions
            where = self._position()
            if self.text.startswith("[[", self.i):
                self.i += 2
                parts, _ = self._read_key()
                self.i += 2  # ]]
                written = tuple(parts)
                self._array_tables[written] = self._array_tables.get(written, -1) + 1
                table = self._resolve(written) + (self._array_tables[written],)
                self.positions.setdefault(self._resolve(written), where)
                self.positions[table] = where
            elif self._peek() == "[":
                self.i += 1
                parts, _ = self._read_key()
                self.i += 1  # ]
                table = self._resolve(tuple(parts))
                self.positions[table] = where
            else:
                self._key_value(table)

    def _resolve(self, written: tuple[str, ...]) -> KeyPath:
        """Insert the current index after every prefix that names an array of tables."""
        resolved: list[str | int] = []
        for n, part in enumerate(written):
            resolved.append(part)
            prefix = written[: n + 1]
            if prefix in self._array_tables and n + 1 < len(written):
                resolved.append(self._array_tables[prefix])
        return tuple(resolved)

    def _key_value(self, table: KeyPath) -> None:
        parts, where = self._read_key()
        path = table + tuple(parts)
        for n in range(len(table) + 1, len(path) + 1):
            self.positions.setdefault(path[:n], where)
        self.i += 1  # =
        self._skip_blank(newlines=False)
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        ch = self._peek()
        if ch in "\"'":
            self._read_string()
        elif ch == "{":
            self.i += 1
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "}":
                    self.i += 1
                    return
                if self._peek() == ",":
                    self.i += 1
                    continue
                self._key_value(path)
        elif ch == "[":
            self.i += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self.i += 1
                    return
                if self._peek() == ",":
                    self.i += 1
                    index += 1
                    continue
                self.positions.setdefault(path + (index,), self._position())
                self._value(path + (index,))
        else:
            # A bare scalar (number, bool, date): runs to a delimiter.
            while self.i < len(self.text) and self.text[self.i] not in ",]}\n#":
                self.i += 1


def _escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return raw


def locate_keys(text: str) -> dict[KeyPath, Position]:
    """Map every key path in a valid TOML document to where it was written."""
    try:
        return _Scanner(text).scan()
    except (IndexError, ValueError):  # never let locating positions hide the real error
        return {}


def nearest_position(positions: dict[KeyPath, _Where], path: KeyPath) -> _Where | None:
    """The position of `path`, or of its longest written prefix (a missing key's table)."""
    for n in range(len(path), 0, -1):
        if path[:n] in positions:
            return positions[path[:n]]
    return None
