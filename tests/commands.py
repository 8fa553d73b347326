"""`ftc` as users run it, in a process of its own, for the tests that check the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ftc(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftc", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )
