"""Nothing in ftc decides by a quantization backend's name but its record (ftc.quantizers) and qlora's runtime
module (ftc.runtime.model.quantization, which holds each backend's layer classes and loading arguments)."""

from __future__ import annotations

from ftc.quantizers import ON_THE_FLY, QUANTIZERS
from ftc.runtime.model.quantization import QUANTIZED_LINEARS
from ftc.spec.sections.base import QuantBackend
from tests.name_branches import uses_of


def test_no_backend_name_is_branched_on_outside_its_record_and_the_runtime_module():
    names = set(QUANTIZERS)
    allowed = {"ftc/quantizers.py": names, "ftc/runtime/model/quantization.py": names}
    # The importers translate the other tools' names for the backends: their tables are made of names.
    allowed |= {f"ftc/importers/{tool}.py": names for tool in ("llamafactory", "axolotl")}
    found = uses_of(names, allowed)
    assert not found, "ask the backend's record (ftc.quantizers) instead:\n" + "\n".join(map(str, found))


def test_the_spec_offers_the_on_the_fly_backends_and_the_runtime_knows_every_layer():
    assert QuantBackend.__args__ == ON_THE_FLY == ("bitsandbytes", "hqq", "eetq")
    assert set(QUANTIZED_LINEARS) == set(QUANTIZERS)
    assert all(quantizer.default_bits in quantizer.bits for quantizer in QUANTIZERS.values())
