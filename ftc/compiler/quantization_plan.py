"""How the plan holds the base's weights: quantized as [quantization] asks (qlora), as a published
quantized checkpoint was written, or not at all; and whether the chosen backend runs on the hardware."""

from __future__ import annotations

from dataclasses import dataclass

from ftc.compiler.hardware import Hardware
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.plan import Decision
from ftc.devices.backends import BACKENDS
from ftc.errors import FtcError
from ftc.methods import METHODS
from ftc.quantizers import DEFAULT_BACKEND, ON_THE_FLY, QUANTIZERS, QuantScheme, chosen_scheme
from ftc.spec.models import Spec


@dataclass(frozen=True)
class Quantization:
    """How the plan holds the base's decoder linears: the decisions it shows, and the scheme the estimate counts."""

    bits: Decision
    backend: Decision
    group_size: Decision
    scheme: QuantScheme | None = None

    def plan_fields(self) -> dict[str, Decision]:
        return {
            "quantization_bits": self.bits,
            "quantization_backend": self.backend,
            "quantization_group_size": self.group_size,
        }


_NOT_QUANTIZED = "no quantization: the method is not qlora"


def plan_quantization(spec: Spec, record: Hardware, arch: Architecture | None) -> Quantization:
    method = METHODS[spec.train.method]
    checkpoint = arch.quantization if arch is not None else None
    if checkpoint is not None:
        return _checkpoint_quantization(spec, record, checkpoint)
    if not method.quantizes:
        nothing = Decision(None, _NOT_QUANTIZED)
        return Quantization(nothing, nothing, nothing)
    asked = spec.quantization
    scheme = chosen_scheme(asked.backend, asked.bits, asked.group_size)
    _check_runs_on(scheme, record, "quantization.backend")
    quantizer = QUANTIZERS[scheme.backend]
    backend_said = "set in the spec (quantization.backend)" if asked.backend != DEFAULT_BACKEND else "the default"
    bits_said = "set in the spec (quantization.bits)" if asked.bits is not None else f"{scheme.backend}'s default"
    group_said = (
        "set in the spec (quantization.group_size)" if asked.group_size is not None else f"{scheme.backend}'s default"
    )
    return Quantization(
        Decision(scheme.bits, f"{bits_said}: {scheme.title}"),
        Decision(scheme.backend, f"{backend_said}: {quantizer.summary}, applied as the base loads"),
        Decision(scheme.group_size, group_said if scheme.group_size else f"{scheme.backend} does not group weights"),
        scheme,
    )


def _checkpoint_quantization(spec: Spec, record: Hardware, checkpoint: QuantScheme) -> Quantization:
    """A base published quantized: it trains only as qlora, held as its config.json says."""
    method = spec.train.method
    published = f"{spec.model.name_or_path} is a {checkpoint.title} checkpoint (config.json's quantization_config)"
    if not METHODS[method].quantizes:
        adapter_methods = [name for name, record in METHODS.items() if record.quantizes]
        raise FtcError(
            f"train.method = {method!r}: {published}, whose quantized weights "
            + ("cannot take gradients" if not METHODS[method].has_adapter else "are not the plain weights lora adapts"),
            f"set train.method = {adapter_methods[0]!r} (a LoRA adapter over the base as it was quantized), or start "
            "from the unquantized model",
        )
    written = {"backend": checkpoint.backend, "bits": checkpoint.bits, "group_size": checkpoint.group_size}
    for key, value in written.items():
        asked = getattr(spec.quantization, key)
        if key in spec.quantization.model_fields_set and asked != value:
            raise FtcError(
                f"quantization.{key} = {asked!r}, but {published} with {key} {value!r}",
                f"remove quantization.{key}: a quantized checkpoint is held as it was published",
            )
    _check_runs_on(checkpoint, record, "model.name_or_path")
    said = "read from the checkpoint's config.json (quantization_config)"
    return Quantization(
        Decision(checkpoint.bits, f"{said}: {checkpoint.title}"),
        Decision(checkpoint.backend, f"{said}: {QUANTIZERS[checkpoint.backend].summary}"),
        Decision(checkpoint.group_size, said if checkpoint.group_size else f"{checkpoint.backend} does not group"),
        checkpoint,
    )


def published_quantized(arch: Architecture | None) -> bool:
    return arch is not None and arch.quantization is not None


def _check_runs_on(scheme: QuantScheme, record: Hardware, key: str) -> None:
    quantizer = QUANTIZERS[scheme.backend]
    if record.backend not in quantizer.devices:
        runs_on = [name for name in ON_THE_FLY if record.backend in QUANTIZERS[name].devices]
        other = f"quantization.backend = {runs_on[0]!r}" if runs_on else "train.method = 'lora'"
        raise FtcError(
            f"{key}: {scheme.title} needs {quantizer.needs}, not the {BACKENDS[record.backend].title} of {record.name}",
            f"plan for hardware it runs on, or use {other} on {BACKENDS[record.backend].devices}"
            + (", starting from the unquantized model" if scheme.from_checkpoint else ""),
        )
