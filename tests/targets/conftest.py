"""Tools the target tests run for real: shellcheck, and a one-node Slurm cluster on loopback.

Both come from the project's own scripts (scripts/shellcheck.sh, scripts/slurm/up.sh), which install
Debian's packages where missing; no fixture installs anything itself. CI runs as root on Debian.
Elsewhere, without the tools, the tests that need them are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="session")
def shellcheck() -> str:
    """The command the tests lint with: scripts/shellcheck.sh, which installs shellcheck where it is missing."""
    script = str(SCRIPTS / "shellcheck.sh")
    probe = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        pytest.skip(f"scripts/shellcheck.sh cannot run shellcheck: {probe.stderr.strip()}")
    return script


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """SLURM_CONF of a fresh cluster, set in this process's environment for sbatch, scontrol and ftc."""
    if os.geteuid() != 0:
        pytest.skip("a local Slurm cluster needs root (slurmctld and slurmd run as root)")
    state = tmp_path_factory.mktemp("slurm")
    started = time.monotonic()
    up = subprocess.run([str(SCRIPTS / "slurm" / "up.sh"), str(state)], capture_output=True, text=True, timeout=600)
    previous = os.environ.get("SLURM_CONF")
    try:
        if up.returncode != 0:
            pytest.fail(f"scripts/slurm/up.sh failed:\n{up.stdout}\n{up.stderr}")
        os.environ["SLURM_CONF"] = str(state / "slurm.conf")
        print(f"slurm cluster up in {time.monotonic() - started:.1f} s")
        yield state / "slurm.conf"
    finally:
        subprocess.run([str(SCRIPTS / "slurm" / "down.sh"), str(state)], capture_output=True, timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
