"""A run folder and what it holds, without torch: its resolved spec and plan, metrics.json and the report drawn
from it, the recorded peak memory, checkpoints and their seals, and the environment names a run reads.

Targets, the CLI and the runtime all read run folders through this package.
"""
