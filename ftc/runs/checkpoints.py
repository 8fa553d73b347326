"""Which checkpoint a run resumes from, and which old ones go: only whole checkpoints count.

A checkpoint is whole when its seal (`ftc.runs.seal`) matches its files. Checkpoints from
before seals: in a run none of whose checkpoints has a seal (an older ftc wrote them), one counts if its files
check out whole (`ftc.runs.unsealed`), so that such a run still resumes where it stopped; once a
run has a seal anywhere, an unsealed folder was cut, whatever its files. Newer folders that are not whole
are skipped, with the reason said, and removed before the run writes them again.

Importing this module is cheap: the launcher chooses too (`ftc launch --resume`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ftc.runs.seal import files_in, is_sealed, seal_problem
from ftc.runs.unsealed import unsealed_problem

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class Choice:
    chosen: Path | None  # the newest whole checkpoint, or None: start from the beginning
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # newer folders, newest first, and why

    def lines(self) -> list[str]:
        """One line per skipped folder, as the run prints them."""
        then = f"resuming from {self.chosen.name}" if self.chosen else "no whole checkpoint: starting from step 0"
        lines = [f"skipped {path.name}: incomplete ({reason}) — {then}" for path, reason in self.skipped]
        if self.chosen is not None and not is_sealed(self.chosen):
            lines.append(f"{self.chosen.name} has no seal (written before ftc sealed checkpoints); its files check out")
        return lines


def checkpoint_folders(checkpoints: Path) -> list[tuple[int, Path]]:
    """checkpoint-N folders by step, oldest first (a PPO save's checkpoint-N.partial is not one)."""
    if not checkpoints.is_dir():
        return []
    found = [(int(match.group(1)), path) for path in checkpoints.iterdir() if (match := _CHECKPOINT.match(path.name))]
    return sorted(found)


def checkpoint_problem(folder: Path, step: int, unsealed_allowed: bool) -> str | None:
    """Why `folder` is not whole checkpoint `step`, or None. Without a seal it can be whole only in a run from
    before seals (`unsealed_allowed`): once a run seals its checkpoints, a folder without a seal was cut."""
    if is_sealed(folder):
        return seal_problem(folder, step)
    problem = unsealed_problem(folder, step) if unsealed_allowed else "its save did not finish"
    return None if problem is None else f"no seal; {_contents(folder) or problem}"


def unsealed_allowed(folders: list[tuple[int, Path]]) -> bool:
    """A run whose checkpoints carry no seal at all was written before ftc sealed them."""
    return not any(is_sealed(folder) for _, folder in folders)


def _contents(folder: Path) -> str | None:
    """What a nearly empty folder holds, which says more than its first missing file."""
    try:
        names = list(files_in(folder))
    except OSError:
        return None
    if not names:
        return "empty"
    return f"holds only {', '.join(names)}" if len(names) <= 2 else None


def choose_checkpoint(checkpoints: Path) -> Choice:
    """The newest whole checkpoint, and the newer folders skipped on the way to it."""
    skipped, folders = [], checkpoint_folders(checkpoints)
    allowed = unsealed_allowed(folders)
    for step, folder in reversed(folders):
        problem = checkpoint_problem(folder, step, allowed)
        if problem is None:
            return Choice(folder, skipped)
        skipped.append((folder, problem))
    return Choice(None, skipped)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest whole checkpoint (sealed, or from before seals and checked whole), or None."""
    return choose_checkpoint(checkpoints).chosen


def checkpoint_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]


def remove_skipped(choice: Choice) -> None:
    """The skipped folders go: the run writes each of them again, and must not write into a cut one."""
    for folder, _ in choice.skipped:
        shutil.rmtree(folder, ignore_errors=True)


def rotate_checkpoints(checkpoints: Path, newest: int, keep: int) -> None:
    """After checkpoint `newest` is sealed: keep it and the newest whole ones up to `keep` (0: keep all).

    Anything older that is not among them goes, cut folders included. This runs only after a seal, so a
    whole checkpoint is never removed in favour of one still being written (the trainer rotates before
    it returns from its save, so its own rotation is off: `ftc.runtime.trainer_args`).
    """
    if keep <= 0:
        return
    folders = checkpoint_folders(checkpoints)
    allowed = unsealed_allowed([(step, folder) for step, folder in folders if step != newest])
    kept = 1
    for step, folder in reversed([(step, folder) for step, folder in folders if step < newest]):
        if kept < keep and checkpoint_problem(folder, step, allowed) is None:
            kept += 1
            continue
        shutil.rmtree(folder, ignore_errors=True)
