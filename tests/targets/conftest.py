"""Tools the target tests run for real: shellcheck, and a one-node Slurm cluster on loopback.

Both come from the project's own scripts (scripts/apt-ensure.sh, scripts/slurm/up.sh), which install
Debian's packages where missing; CI runs as root on Debian. Elsewhere, without them, the tests that
need them are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _ensure(command: str, package: str) -> str:
    if shutil.which(command) is None:
        result = subprocess.run(
            [str(SCRIPTS / "apt-ensure.sh"), f"{command}={package}"], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"{command} is not installed and could not be: {result.stderr.strip()}")
    return shutil.which(command) or pytest.fail(f"{command} still missing after installing {package}")


@pytest.fixture(scope="session")
def shellcheck() -> str:
    return _ensure("shellcheck", "shellcheck")


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
