"""`ftc lock` killed with SIGKILL at random points while it writes: the old lock survives whole, or the
new one is there whole; never a partial file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

# The real `ftc lock`, on a disk made slow: each write goes out in small pieces and fsync waits, so a
# random kill lands inside the write often instead of almost never.
SLOW_DISK_LOCK = """
import os, sys, time
real_fdopen, real_fsync = os.fdopen, os.fsync

class SlowFile:
    def __init__(self, file): self.file = file
    def write(self, text):
        for start in range(0, len(text), 512):
            self.file.write(text[start:start + 512]); self.file.flush(); time.sleep(0.002)
        return len(text)
    def __getattr__(self, name): return getattr(self.file, name)
    def __enter__(self): return self
    def __exit__(self, *exc): return self.file.__exit__(*exc)

os.fdopen = lambda *a, **k: SlowFile(real_fdopen(*a, **k))
os.fsync = lambda fd: (time.sleep(0.05), real_fsync(fd))[1]
sys.stdout.write("started\\n"); sys.stdout.flush()
sys.argv = ["ftc", "lock", "job.toml", "-H", "cpu", *sys.argv[1:]]
from ftc.cli import main
main()
"""

SPEC = """\
[model]
name_or_path = "meta-llama/Llama-3.1-8B"
template = "llama3"

[[data.datasets]]
path = "data"

[train]
max_steps = 3
seed = 1
"""


def run_lock(folder: Path, *overrides: str, kill_after: float | None = None) -> int:
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_DISK_LOCK, *overrides], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout.readline() == b"started\n"
    if kill_after is None:
        return process.wait(timeout=120)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return process.returncode


def test_a_killed_lock_never_leaves_a_partial_file(tmp_path):
    (tmp_path / "job.toml").write_text(SPEC)
    (tmp_path / "data").mkdir()
    for index in range(300):  # many inputs: a lockfile of ~30 KB that takes a while to write
        (tmp_path / "data" / f"part-{index:03}.jsonl").write_text(f'{{"instruction": "{index}", "output": "x"}}\n')
    lock = tmp_path / "job.toml.lock"

    started = time.monotonic()
    assert run_lock(tmp_path, "--set", "train.seed=1") == 0
    took = time.monotonic() - started
    old = lock.read_bytes()
    assert run_lock(tmp_path, "--set", "train.seed=2") == 0
    new = lock.read_bytes()
    assert old != new and len(new) > 20_000

    rng = random.Random(0)
    outcomes = {"old": 0, "new": 0}
    lock.write_bytes(old)
    for _ in range(16):
        code = run_lock(tmp_path, "--set", "train.seed=2", kill_after=rng.uniform(0.0, took))
        content = lock.read_bytes()
        assert content in (old, new), f"partial lockfile after SIGKILL (exit {code}): {len(content)} bytes"
        tomllib.loads(content.decode())  # and it parses
        outcomes["old" if content == old else "new"] += 1
        lock.write_bytes(old)
    leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    # A kill can leave a temporary file; the next lock clears it, and it is never the lockfile itself.
    assert run_lock(tmp_path, "--set", "train.seed=2") == 0
    assert lock.read_bytes() == new
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    print(f"SIGKILL during ftc lock: {outcomes} over 16 kills, temporaries left by kills: {len(leftovers)}")
    assert outcomes["old"] > 0  # some kills landed before the rename
