"""The environment benchmarked processes run in: as users run an installed ftc.

pip compiles every module to bytecode when it installs ftc, so the children may write and read .pyc
files even where the environment says not to: PYTHONDONTWRITEBYTECODE would have every run compile
ftc's sources again (about 20 ms of a cold `ftc validate`), which no installed copy pays.
"""

from __future__ import annotations

import os

AS_INSTALLED = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
