"""The runtime's stages: one module per stage here, each named by its record in `ftc.stages`.

A stage module has one function, `run(run_folder)`; `STAGES[name].module` names it. The records are
re-exported for the runtime's callers and import nothing heavy, so the launcher can check
`stage in STAGES` before starting anything.
"""

from __future__ import annotations

from ftc.methods import METHODS
from ftc.stages import STAGES

__all__ = ["METHODS", "STAGES"]
