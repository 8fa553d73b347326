"""What every benchmark writes beside its numbers: which machine and Python produced them."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def write_report(path: Path, benchmark: str, **numbers: Any) -> None:
    report = {
        "benchmark": benchmark,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        **numbers,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
