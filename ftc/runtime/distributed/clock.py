"""When this process started, so startup can be measured from the real beginning, interpreter included."""

from __future__ import annotations

import os
import time

# Fallback where /proc is missing: the moment the runtime's entry module first imported this one.
_IMPORTED_AT = time.time()


def process_started_at() -> float:
    """Wall-clock time (as time.time()) at which this process started."""
    try:
        with open(f"/proc/{os.getpid()}/stat", encoding="ascii") as stat:
            # Fields after the command name, which sits in parentheses and may itself hold spaces;
            # the start time (field 22) is in clock ticks since boot.
            fields = stat.read().rsplit(")", 1)[1].split()
        started_ticks_after_boot = int(fields[19])
        since_start = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks_after_boot / os.sysconf("SC_CLK_TCK")
        return time.time() - since_start
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED_AT
