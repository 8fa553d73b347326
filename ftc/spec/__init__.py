"""The spec language: pydantic models, a TOML loader, and located diagnostics. Pure: no torch."""

from ftc.spec.diagnostics import Diagnostic, SpecError
from ftc.spec.loader import LoadedSpec, load_spec, parse_spec
from ftc.spec.models import Spec

__all__ = ["Diagnostic", "LoadedSpec", "Spec", "SpecError", "load_spec", "parse_spec"]
