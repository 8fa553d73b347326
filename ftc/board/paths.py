"""Every path the page names is taken relative to the board's folder and must stay in it."""

from __future__ import annotations

from pathlib import Path

from ftc.errors import FtcError

SPEC_SUFFIX = ".toml"


class OutsideFolder(FtcError):
    """A path that leaves the board's folder (`..`, an absolute path elsewhere, a link out): refused."""


def inside(root: Path, name: str) -> Path:
    """`name` (relative to `root`, or absolute) resolved, links followed; refused when it leaves `root`."""
    if not name or "\x00" in name:
        raise OutsideFolder("no path given", "name a file inside the board's folder")
    resolved = (root / name).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise OutsideFolder(f"{name} is outside the board's folder {root}", "the board reads and writes only there")
    return resolved


def spec_file(root: Path, name: str) -> Path:
    """A spec the editor may open or write: inside `root`, a .toml file, and not a run folder's resolved spec."""
    path = inside(root, name)
    if path.suffix != SPEC_SUFFIX:
        raise OutsideFolder(f"{name} is not a .toml file", "the editor opens and saves spec files (.toml) only")
    if (path.parent / "plan.json").is_file():
        raise OutsideFolder(
            f"{name} is a run folder's resolved spec", "edit the spec it was launched from, and launch again"
        )
    return path


def shown(root: Path, path: Path) -> str:
    """How the page names `path`: relative to the board's folder."""
    return path.resolve().relative_to(root.resolve()).as_posix()
