"""The compiler: pure functions from a spec and hardware to a resolved plan. No torch, no I/O."""

from ftc.compiler.hardware import HARDWARE, parse_hardware
from ftc.compiler.plan import Decision, HardwareRef, Plan
from ftc.compiler.planner import compile_plan

__all__ = ["HARDWARE", "Decision", "HardwareRef", "Plan", "compile_plan", "parse_hardware"]
