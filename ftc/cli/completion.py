"""Shell completion that knows ftc: hardware names, spec key paths, targets and run folders.

Each function takes what the user typed so far and returns the candidates; the shell calls them
through click's completion protocol, so they import only the registry they read.
"""

from __future__ import annotations

import re
from pathlib import Path

# Device counts offered before a hardware name: the common node sizes.
COUNTS = (2, 4, 8)
# A run folder is one `ftc launch` wrote: it always holds the plan it ran.
RUN_MARKER = "plan.json"


def hardware(incomplete: str) -> list[str]:
    """`auto`, every registry name and alias, and the same behind a count (`8xH100`)."""
    from ftc.compiler.hardware import HARDWARE

    names = [spelling for record in HARDWARE.values() for spelling in (record.name, *record.aliases)]
    counted = re.match(r"^(\d+)[xX]", incomplete)
    if counted:
        prefix = counted.group(0)
        return [f"{prefix}{name}" for name in names if f"{prefix}{name}".lower().startswith(incomplete.lower())]
    offered = ["auto", *names, *(f"{count}x{name}" for count in COUNTS for name in names)]
    return [name for name in offered if name.lower().startswith(incomplete.lower())]


def key_path(incomplete: str) -> list[str]:
    """Spec key paths from the schema, for `ftc explain`."""
    from ftc.spec.schema import known_keys

    return [key for key in known_keys() if key.startswith(incomplete)]


def override(incomplete: str) -> list[str]:
    """`--set KEY=`: the key paths, each ready for its value; past the `=` the value is the user's."""
    if "=" in incomplete:
        return []
    return [f"{key}=" for key in key_path(incomplete)]


def target(incomplete: str) -> list[str]:
    from ftc.targets import TARGETS

    return [name for name in TARGETS if name.startswith(incomplete)]


def run_folder(incomplete: str) -> list[str]:
    """Folders beside what was typed that `ftc launch` wrote, and folders that may hold some."""
    typed = Path(incomplete or ".")
    parent, stem = (typed, "") if incomplete.endswith("/") or not incomplete else (typed.parent, typed.name)
    if not parent.is_dir():
        return []
    found = []
    for child in sorted(parent.iterdir()):
        if not child.is_dir() or not child.name.startswith(stem) or child.name.startswith("."):
            continue
        shown = str(child) if incomplete and str(parent) != "." or incomplete.startswith("./") else child.name
        found.append(shown if (child / RUN_MARKER).is_file() else f"{shown}/")
    return found


def folder(incomplete: str) -> list[str]:
    """Folders beside what was typed, for a command that takes a folder (`ftc board DIR`)."""
    return [name for name in run_folder(incomplete) if name.endswith("/") or Path(name).is_dir()]
