"""Quantization backends: one record per library that holds a frozen base's linear layers in fewer bits.

Three quantize a base while it loads, as `quantization.backend` names them: bitsandbytes, hqq and eetq.
The others only read a checkpoint that was quantized before it was published (gptq, awq, aqlm): its
config.json's `quantization_config` names the method, and bitsandbytes, hqq and eetq checkpoints are read
the same way. The spec (bits allowed), the compiler (bytes per layer, where it runs), the runtime (what to
import) and `ftc doctor` ask these records; nothing else branches on a backend's name. Records only, and
pure: the spec layer reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# fp16: the scales GPTQ, AWQ, AQLM and EETQ store, whatever the compute dtype.
_FP16 = 2
# bitsandbytes NF4: half a byte per weight, plus one absmax per block of 64 weights. Double quantization
# stores those absmaxes as 8-bit with an fp32 absmax per 256 of them; without it each absmax is fp32.
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
NF4_BYTES_PER_WEIGHT_SINGLE = 0.5 + 4 / 64


@dataclass(frozen=True)
class QuantScheme:
    """How the decoder's linear layers are held: which backend, how many bits, in groups of how many weights."""

    backend: str  # a QUANTIZERS key
    bits: int
    group_size: int | None = None  # weights sharing one scale (and zero); None: the backend does not group
    from_checkpoint: bool = False  # read from config.json's quantization_config, not chosen by the spec
    double_quant: bool = True  # bitsandbytes 4-bit: absmaxes quantized again (the QLoRA recipe)
    codebook_bytes: int = 0  # AQLM: the fp16 codebooks each linear layer carries, whatever its size

    @property
    def title(self) -> str:
        grouped = f", groups of {self.group_size}" if self.group_size else ""
        return f"{self.backend} {self.bits}-bit{grouped}"


# (scheme, in_features, out_features, compute-dtype bytes) → bytes of one quantized linear layer
Storage = Callable[[QuantScheme, int, int, int], float]
# config.json's quantization_config → the scheme it describes, or a message saying what is wrong with it
Reader = Callable[[Mapping[str, Any]], "QuantScheme | str"]


@dataclass(frozen=True)
class Quantizer:
    name: str  # quantization.backend, or a checkpoint's quant_method
    summary: str
    bits: tuple[int, ...]  # weight bits it holds
    default_bits: int
    storage: Storage
    read: Reader  # its checkpoints' quantization_config
    packages: tuple[str, ...]  # what transformers imports to run it (and `ftc doctor` looks for)
    extra: str  # ftc's extra that installs it (pip install 'ftc[<extra>]')
    devices: tuple[str, ...]  # the plan backends it runs on (ftc.devices.backends)
    on_the_fly: bool = False  # it quantizes a base as it loads: quantization.backend may name it
    default_group_size: int | None = None  # the group quantization.group_size sets; None: no such key
    # Its 8-bit layers save their inputs for the backward themselves, out of gradient checkpointing's reach.
    keeps_int8_inputs: bool = False
    loftq: bool = False  # lora.init = 'loftq' reads its 4-bit weights back to start the adapters
    # transformers marks its models loaded in 4 or 8 bits, which is what trl's trainers read to cast the adapter
    # to bf16 (the stage's record says which trainers do); under the other backends peft's fp32 adapter stays.
    marks_loaded_in_bits: bool = False

    @property
    def needs(self) -> str:
        """What a machine must have to run it, as a message says it."""
        where = " or ".join(_DEVICE_WORDS.get(device, device) for device in self.devices)
        return f"{where} and package {' with '.join(self.packages)} (pip install 'ftc[{self.extra}]')"


_DEVICE_WORDS = {"cuda": "CUDA", "cpu": "the CPU", "npu": "an Ascend NPU"}


def _groups(scheme: QuantScheme, in_features: int) -> int:
    """Groups along each output row: a group of None or -1 spans the whole row."""
    size = scheme.group_size if scheme.group_size and scheme.group_size > 0 else in_features
    return math.ceil(in_features / size)


def _bitsandbytes_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    elements = in_features * out_features
    if scheme.bits == 4:
        return elements * (NF4_BYTES_PER_WEIGHT if scheme.double_quant else NF4_BYTES_PER_WEIGHT_SINGLE)
    return elements + out_features * 4  # LLM.int8: a byte per weight, an fp32 scale per output row


def _hqq_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    # hqq groups along the input (axis 1): the weight becomes (elements / group) rows of `group` values,
    # each row with a scale and a zero in the compute dtype. 2, 4 and 8 bits pack into bytes; 3 bits pack
    # ten rows into one int32 row, the last ten padded with zero rows.
    group = scheme.group_size or in_features
    rows = in_features * out_features // group
    packed = 4 * math.ceil(rows / 10) * group if scheme.bits == 3 else rows * group * scheme.bits / 8
    return packed + 2 * rows * act


def _eetq_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    return in_features * out_features + out_features * _FP16  # int8 weights, an fp16 scale per output row


def _gptq_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    # qweight: the packed bits; per group and output column an fp16 scale and a packed zero; g_idx: an
    # int32 group index per input feature (act-order reorders them).
    groups = _groups(scheme, in_features)
    packed = in_features * out_features * scheme.bits / 8
    return packed + groups * out_features * (_FP16 + scheme.bits / 8) + in_features * 4


def _awq_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    groups = _groups(scheme, in_features)  # as GPTQ, without the group index
    return in_features * out_features * scheme.bits / 8 + groups * out_features * (_FP16 + scheme.bits / 8)


def _aqlm_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    # codes (bits per weight on average), the layer's own codebooks, an fp16 scale per output row
    return in_features * out_features * scheme.bits / 8 + scheme.codebook_bytes + out_features * _FP16


def _number(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _read_bitsandbytes(config: Mapping[str, Any]) -> QuantScheme | str:
    if config.get("load_in_4bit"):
        return QuantScheme("bitsandbytes", 4, None, True, double_quant=bool(config.get("bnb_4bit_use_double_quant")))
    if config.get("load_in_8bit"):
        return QuantScheme("bitsandbytes", 8, None, True)
    return "it sets neither load_in_4bit nor load_in_8bit"


def _read_hqq(config: Mapping[str, Any]) -> QuantScheme | str:
    # transformers writes HqqConfig as quant_config.weight_quant_params; older files put nbits at the top
    weights = (config.get("quant_config") or {}).get("weight_quant_params") or config
    bits = _number(weights, "nbits")
    return QuantScheme("hqq", bits, _number(weights, "group_size"), True) if bits else "it names no nbits"


def _read_eetq(config: Mapping[str, Any]) -> QuantScheme | str:
    return QuantScheme("eetq", 8, None, True)


def _read_grouped(backend: str) -> Reader:
    def read(config: Mapping[str, Any]) -> QuantScheme | str:
        bits = _number(config, "bits", "w_bit")  # AutoAWQ's own files say w_bit / q_group_size
        group = _number(config, "group_size", "q_group_size")
        return QuantScheme(backend, bits, group if group and group > 0 else None, True) if bits else "it names no bits"

    return read


def _read_aqlm(config: Mapping[str, Any]) -> QuantScheme | str:
    codebooks, code_bits = _number(config, "num_codebooks"), _number(config, "nbits_per_codebook")
    in_group, out_group = _number(config, "in_group_size"), _number(config, "out_group_size")
    if not (codebooks and code_bits and in_group and out_group):
        return "it needs num_codebooks, nbits_per_codebook, in_group_size and out_group_size"
    bits, remainder = divmod(codebooks * code_bits, in_group * out_group)
    if remainder or bits == 0:
        return f"its codes take {codebooks * code_bits}/{in_group * out_group} bits per weight, not a whole number"
    codebook_bytes = codebooks * 2**code_bits * in_group * out_group * _FP16
    return QuantScheme("aqlm", bits, None, True, codebook_bytes=codebook_bytes)


def _registry(*quantizers: Quantizer) -> dict[str, Quantizer]:
    return {quantizer.name: quantizer for quantizer in quantizers}


# The on-the-fly backends first, bitsandbytes (the default) leading: the spec's Literal lists them so.
QUANTIZERS: dict[str, Quantizer] = _registry(
    Quantizer(
        "bitsandbytes",
        "NF4 with double quantization (4-bit, the QLoRA recipe) or LLM.int8 (8-bit)",
        bits=(4, 8),
        default_bits=4,
        storage=_bitsandbytes_bytes,
        read=_read_bitsandbytes,
        packages=("bitsandbytes",),
        extra="qlora",
        devices=("cuda", "cpu"),
        on_the_fly=True,
        keeps_int8_inputs=True,
        loftq=True,
        marks_loaded_in_bits=True,
    ),
    Quantizer(
        "hqq",
        "half-quadratic quantization: no calibration data, a scale and a zero per group in the compute dtype",
        bits=(2, 3, 4, 8),
        default_bits=4,
        storage=_hqq_bytes,
        read=_read_hqq,
        packages=("hqq",),
        extra="hqq",
        devices=("cuda", "cpu", "npu"),  # its PyTorch backend: whatever torch computes on
        on_the_fly=True,
        default_group_size=64,
    ),
    Quantizer(
        "eetq",
        "int8 weights with an fp16 scale per output row, EETQ's CUDA kernels (fetched by the kernels package)",
        bits=(8,),
        default_bits=8,
        storage=_eetq_bytes,
        read=_read_eetq,
        packages=("kernels",),
        extra="eetq",
        devices=("cuda",),
        on_the_fly=True,
    ),
    Quantizer(
        "gptq",
        "a GPTQ checkpoint: packed weights, fp16 scales and packed zeros per group, a group index per input",
        bits=(2, 3, 4, 8),
        default_bits=4,
        storage=_gptq_bytes,
        read=_read_grouped("gptq"),
        packages=("gptqmodel", "optimum"),
        extra="gptq",
        devices=("cuda",),
    ),
    Quantizer(
        "awq",
        "an AWQ checkpoint: packed 4-bit weights, fp16 scales and packed zeros per group",
        bits=(4,),
        default_bits=4,
        storage=_awq_bytes,
        read=_read_grouped("awq"),
        packages=("gptqmodel",),  # transformers 5 runs AWQ checkpoints through GPTQModel
        extra="awq",
        devices=("cuda",),
    ),
    Quantizer(
        "aqlm",
        "an AQLM checkpoint: additive codebooks, a few bits of codes per weight",
        bits=(1, 2, 3, 4),
        default_bits=2,
        storage=_aqlm_bytes,
        read=_read_aqlm,
        packages=("aqlm",),
        extra="aqlm",
        devices=("cuda",),
    ),
)

ON_THE_FLY = tuple(name for name, quantizer in QUANTIZERS.items() if quantizer.on_the_fly)
DEFAULT_BACKEND = ON_THE_FLY[0]  # quantization.backend unset


def scheme_from_config(quantization_config: Any, source: str) -> QuantScheme:
    """The scheme config.json's quantization_config describes; a ValueError says what ftc cannot read in it."""
    if not isinstance(quantization_config, Mapping):
        raise ValueError(f"{source}: quantization_config is not an object of settings")
    method = quantization_config.get("quant_method")
    quantizer = QUANTIZERS.get(str(method).lower())
    if quantizer is None:
        raise ValueError(
            f"{source}: quantization_config.quant_method = {method!r} is not a quantization ftc trains LoRA over "
            f"(known: {', '.join(QUANTIZERS)})"
        )
    scheme = quantizer.read(quantization_config)
    if isinstance(scheme, str):
        raise ValueError(f"{source}: a {quantizer.name} quantization_config that ftc cannot read: {scheme}")
    if scheme.bits not in quantizer.bits:
        raise ValueError(
            f"{source}: a {scheme.bits}-bit {quantizer.name} checkpoint; {quantizer.name} holds "
            f"{', '.join(map(str, quantizer.bits))} bits"
        )
    return scheme


def chosen_scheme(backend: str, bits: int | None, group_size: int | None) -> QuantScheme:
    """What quantization.backend / bits / group_size ask for, the backend's defaults filling what is unset."""
    quantizer = QUANTIZERS[backend]
    return QuantScheme(backend, bits or quantizer.default_bits, group_size or quantizer.default_group_size)


def linear_bytes(scheme: QuantScheme, in_features: int, out_features: int, act: int) -> float:
    return QUANTIZERS[scheme.backend].storage(scheme, in_features, out_features, act)
