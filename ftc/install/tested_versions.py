"""The installed versions against the tested set (ftc/constraints.txt), from package metadata alone.

Imports no library it reports on: the runtime's start-up warning and `ftc doctor` both read it, and the
runtime must not pay for an import to learn a version. The lookup is a parameter so that a test can
stand in for an environment without installing fake packages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata, resources

# What the runtime warns about: the libraries whose version changes what a run computes (as locked).
from ftc.lock.inputs import TRAINING_LIBRARIES

CONSTRAINTS_FILE = "constraints.txt"  # shipped inside the ftc package; the repo root links to it

OK = "ok"
OTHER_VERSION = "other version"
MISSING = "missing"

Lookup = Callable[[str], str | None]


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def normalise(name: str) -> str:
    """PEP 503: Jinja2 and jinja2, tomli_w and tomli-w are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> str:
    """The version without its local label: torch's 2.13.0+cpu wheel is the tested 2.13.0."""
    return version.split("+", 1)[0]


@dataclass(frozen=True)
class Pin:
    name: str  # as the constraints file spells it
    version: str


def parse_constraints(text: str) -> tuple[Pin, ...]:
    pins = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        if not separator or not name.strip() or not version.strip():
            raise ValueError(f"{CONSTRAINTS_FILE}:{number}: expected name==version, got {raw.strip()!r}")
        pins.append(Pin(name.strip(), version.strip()))
    return tuple(pins)


def constraints_text() -> str:
    return resources.files("ftc").joinpath(CONSTRAINTS_FILE).read_text(encoding="utf-8")


def read_tested_set() -> tuple[Pin, ...]:
    return parse_constraints(constraints_text())


@dataclass(frozen=True)
class VersionCheck:
    name: str
    tested: str
    installed: str | None
    status: str  # OK, OTHER_VERSION or MISSING

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.name} not installed (tested {self.tested})"
        return f"{self.name} {self.installed} (tested {self.tested})"


def check(pin: Pin, installed: Lookup = installed_version) -> VersionCheck:
    found = installed(pin.name)
    if found is None:
        status = MISSING
    elif release(found) == release(pin.version):
        status = OK
    else:
        status = OTHER_VERSION
    return VersionCheck(pin.name, pin.version, found, status)


def compare(pins: Iterable[Pin], installed: Lookup = installed_version) -> tuple[VersionCheck, ...]:
    return tuple(check(pin, installed) for pin in pins)


def pinned(pins: Iterable[Pin], names: Iterable[str]) -> tuple[Pin, ...]:
    """The pins of these packages, in the order named; a name the file does not pin is skipped."""
    by_name = {normalise(pin.name): pin for pin in pins}
    return tuple(by_name[normalise(name)] for name in names if normalise(name) in by_name)


def untested_warning(pins: Iterable[Pin] | None = None, installed: Lookup = installed_version) -> str | None:
    """One line naming every training library installed at a version the tests did not pass on, or None.

    A library that is absent is not named: the run says so itself when it needs it.
    """
    stack = pinned(read_tested_set() if pins is None else pins, TRAINING_LIBRARIES)
    differing = [found for found in compare(stack, installed) if found.status == OTHER_VERSION]
    if not differing:
        return None
    return f"warning: untested library versions: {', '.join(found.describe() for found in differing)} — ftc doctor"
