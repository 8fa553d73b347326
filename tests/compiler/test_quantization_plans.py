"""Plans for qlora's quantization backends: each backend's storage counted on Llama-3-8B's published shapes, a
checkpoint published quantized (config.json's quantization_config) held as it says, and what cannot run refused."""

from __future__ import annotations

import math

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import architecture_from_config, find_architecture
from ftc.compiler.memory.states import model_states
from ftc.errors import FtcError
from ftc.quantizers import QuantScheme
from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace

LLAMA3_8B = find_architecture("meta-llama/Meta-Llama-3-8B")
GIB = 1024**3
# Llama-3-8B's decoder linears, (in_features, out_features): q, k, v, o, gate, up, down; 32 blocks.
LINEARS = [(4096, 4096), (4096, 1024), (4096, 1024), (4096, 4096), (4096, 14336), (4096, 14336), (14336, 4096)]
LINEAR_ELEMENTS = 32 * sum(i * o for i, o in LINEARS)
# What stays unquantized, in bf16: the embedding, the untied head, two norms per block and the final norm.
UNQUANTIZED_BF16 = 2 * (2 * 128256 * 4096 + 2 * 4096 * 32 + 4096)

# A GPTQ export of Llama-3-8B as quantizers publish it: the base model's config.json plus quantization_config.
GPTQ_LLAMA3_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-05,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "quantization_config": {
        "quant_method": "gptq",
        "bits": 4,
        "group_size": 128,
        "desc_act": True,
        "sym": True,
        "damp_percent": 0.01,
        "true_sequential": True,
        "checkpoint_format": "gptq",
    },
}


def problems(text: str) -> list:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    return caught.value.diagnostics


def weights_bytes(scheme: QuantScheme) -> float:
    return model_states(LLAMA3_8B, "qlora", "bf16", "single", 1, "none", "adamw", scheme, 8, "all", 2).weights


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_hqq_packs_bits_into_bytes_with_a_bf16_scale_and_zero_per_group(bits):
    # packed weights: bits/8 bytes each; per group of 64 weights a scale and a zero, 2 bytes each in bf16
    expected = LINEAR_ELEMENTS * bits / 8 + LINEAR_ELEMENTS / 64 * 2 * 2
    assert weights_bytes(QuantScheme("hqq", bits, 64)) == pytest.approx(expected + UNQUANTIZED_BF16)


def test_hqq_3_bits_pack_ten_rows_of_a_group_into_one_int32_row():
    # Each linear becomes in*out/64 rows of 64 values; ten rows share an int32 row, the last ten padded.
    packed = 32 * sum(4 * math.ceil(i * o / 64 / 10) * 64 for i, o in LINEARS)
    assert packed == pytest.approx(LINEAR_ELEMENTS * 3.2 / 8, rel=2e-5)  # 3.2 bits a weight, a little padding
    expected = packed + LINEAR_ELEMENTS / 64 * 2 * 2
    assert weights_bytes(QuantScheme("hqq", 3, 64)) == pytest.approx(expected + UNQUANTIZED_BF16)


def test_hqq_smaller_groups_hold_more_scales():
    assert weights_bytes(QuantScheme("hqq", 4, 32)) - weights_bytes(QuantScheme("hqq", 4, 64)) == pytest.approx(
        LINEAR_ELEMENTS * (2 * 2 / 32 - 2 * 2 / 64)
    )


def test_eetq_holds_a_byte_per_weight_and_an_fp16_scale_per_output_row():
    expected = LINEAR_ELEMENTS + 32 * sum(o for _, o in LINEARS) * 2
    assert weights_bytes(QuantScheme("eetq", 8)) == pytest.approx(expected + UNQUANTIZED_BF16)


def qlora_spec(*lines: str, name: str = "meta-llama/Meta-Llama-3-8B-Instruct"):
    text = replace(VALID, 'method = "lora"', 'method = "qlora"')
    text = replace(text, "meta-llama/Meta-Llama-3-8B-Instruct", name)
    return parse_spec(text + ("\n[quantization]\n" + "\n".join(lines) + "\n" if lines else ""), "job.toml")


def test_an_hqq_plan_says_its_backend_bits_and_group():
    plan = compile_plan(qlora_spec('backend = "hqq"', "bits = 3", "group_size = 32"), parse_hardware("cpu"), LLAMA3_8B)
    assert (plan.quantization_backend.value, plan.quantization_bits.value) == ("hqq", 3)
    assert plan.quantization_group_size.value == 32 and "quantization.group_size" in plan.quantization_group_size.reason
    default = compile_plan(qlora_spec('backend = "hqq"'), parse_hardware("cpu"), LLAMA3_8B)
    assert (default.quantization_bits.value, default.quantization_group_size.value) == (4, 64)


def test_a_gptq_checkpoint_is_planned_at_its_own_bits_and_groups():
    arch = architecture_from_config(GPTQ_LLAMA3_8B_CONFIG, "config.json")
    assert arch.quantization == QuantScheme("gptq", 4, 128, from_checkpoint=True)
    plan = compile_plan(qlora_spec(name="TheOrg/Llama-3-8B-GPTQ-local"), parse_hardware("1xH100-80GB"), arch)
    assert (plan.quantization_backend.value, plan.quantization_bits.value, plan.quantization_group_size.value) == (
        "gptq",
        4,
        128,
    )
    assert "config.json" in plan.quantization_bits.reason

    # Beside the same base quantized by hqq at 4 bits in groups of 64 (bf16 scale and zero), the weights term
    # differs by the storage alone: GPTQ packs 4 bits too, and per group of 128 inputs and each output column
    # keeps an fp16 scale and a packed 4-bit zero, plus an int32 group index per input feature.
    gptq = 32 * sum(i * o / 2 + (i / 128) * o * (2 + 0.5) + i * 4 for i, o in LINEARS)
    hqq = LINEAR_ELEMENTS / 2 + LINEAR_ELEMENTS / 64 * 4
    same_base = compile_plan(qlora_spec('backend = "hqq"'), parse_hardware("1xH100-80GB"), LLAMA3_8B)
    difference = plan.memory.terms["weights"] - same_base.memory.terms["weights"]
    assert difference == pytest.approx((gptq - hqq) / GIB, rel=1e-6)
    assert gptq / LINEAR_ELEMENTS == pytest.approx(0.5 + 2.5 / 128, rel=0.01)  # ~4.16 bits a weight


@pytest.mark.parametrize(
    "quantization_config, expected",
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}, ("awq", 4, 128)),
        (
            {"quant_method": "aqlm", "in_group_size": 8, "out_group_size": 1, "num_codebooks": 1,
             "nbits_per_codebook": 16},
            ("aqlm", 2, None),
        ),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
            ("bitsandbytes", 4, None),
        ),
        (
            {"quant_method": "hqq", "quant_config": {"weight_quant_params": {"nbits": 2, "group_size": 16}}},
            ("hqq", 2, 16),
        ),
    ],
)  # fmt: skip
def test_other_published_quantizations_are_read_from_config_json(quantization_config, expected):
    arch = architecture_from_config({**GPTQ_LLAMA3_8B_CONFIG, "quantization_config": quantization_config})
    scheme = arch.quantization
    assert (scheme.backend, scheme.bits, scheme.group_size) == expected and scheme.from_checkpoint


def test_an_unknown_published_quantization_is_refused_by_its_file():
    config = {**GPTQ_LLAMA3_8B_CONFIG, "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic"}}
    with pytest.raises(FtcError, match="quant_method = 'fp8'"):
        architecture_from_config(config, "model/config.json")


GPTQ_ARCH = architecture_from_config(GPTQ_LLAMA3_8B_CONFIG)


@pytest.mark.parametrize(
    "method, words",
    [("full", "cannot take gradients"), ("freeze", "cannot take gradients"), ("lora", "not the plain weights")],
)
def test_a_published_quantized_base_trains_only_as_qlora(method, words):
    spec = parse_spec(replace(VALID, 'method = "lora"', f'method = "{method}"'), "job.toml")
    with pytest.raises(FtcError) as caught:
        compile_plan(spec, parse_hardware("1xH100-80GB"), GPTQ_ARCH)
    message = caught.value.message
    assert message.startswith(f"train.method = '{method}'") and "gptq 4-bit" in message and words in message
    assert "train.method = 'qlora'" in caught.value.hint


@pytest.mark.parametrize("line, key", [("bits = 8", "quantization.bits"), ('backend = "hqq"', "quantization.backend")])
def test_quantization_keys_that_contradict_the_checkpoint_are_refused(line, key):
    with pytest.raises(FtcError) as caught:
        compile_plan(qlora_spec(line), parse_hardware("1xH100-80GB"), GPTQ_ARCH)
    assert caught.value.message.startswith(key) and "gptq" in caught.value.message
    assert f"remove {key}" in caught.value.hint


def test_keys_that_agree_with_the_checkpoint_are_accepted():
    plan = compile_plan(qlora_spec("bits = 4"), parse_hardware("1xH100-80GB"), GPTQ_ARCH)
    assert plan.quantization_bits.value == 4


def test_a_gptq_checkpoint_on_the_cpu_needs_cuda_and_gptqmodel():
    with pytest.raises(FtcError) as caught:
        compile_plan(qlora_spec(), parse_hardware("cpu"), GPTQ_ARCH)
    assert "needs CUDA and package gptqmodel with optimum" in caught.value.message
    assert caught.value.message.startswith("model.name_or_path") and "unquantized" in caught.value.hint


def test_eetq_is_planned_on_cuda_and_refused_on_the_cpu():
    plan = compile_plan(qlora_spec('backend = "eetq"'), parse_hardware("1xH100-80GB"), LLAMA3_8B)
    assert (plan.quantization_backend.value, plan.quantization_bits.value) == ("eetq", 8)
    with pytest.raises(FtcError) as caught:
        compile_plan(qlora_spec('backend = "eetq"'), parse_hardware("cpu"), LLAMA3_8B)
    assert caught.value.message.startswith("quantization.backend: eetq 8-bit needs CUDA and package kernels")
    assert "quantization.backend = 'bitsandbytes'" in caught.value.hint


def test_hqq_runs_where_bitsandbytes_does_not():
    plan = compile_plan(qlora_spec('backend = "hqq"'), parse_hardware("8xAscend910B-64GB"), LLAMA3_8B)
    assert plan.quantization_backend.value == "hqq"
    with pytest.raises(FtcError, match="quantization.backend = 'hqq'"):
        compile_plan(qlora_spec(), parse_hardware("8xAscend910B-64GB"), LLAMA3_8B)


@pytest.mark.parametrize(
    "lines, key, words",
    [
        (('backend = "eetq"', "bits = 4"), "quantization.bits", "holds 8 bits, not 4"),
        (('backend = "bitsandbytes"', "bits = 2"), "quantization.bits", "holds 4 or 8 bits, not 2"),
        (("bits = 3",), "quantization.bits", "holds 4 or 8 bits, not 3"),
        (('backend = "hqq"', "bits = 5"), "quantization.bits", "5 is not one of: 2, 3, 4, 8"),
        (("group_size = 32",), "quantization.group_size", "bitsandbytes has no group size"),
        (('backend = "hqq"', "group_size = 12"), "quantization.group_size", "multiple of 8"),
    ],
)
def test_each_backend_takes_its_own_bits_at_the_key(lines, key, words):
    found = problems(replace(VALID, 'method = "lora"', 'method = "qlora"') + "\n[quantization]\n" + "\n".join(lines))
    assert [(d.path, words in d.message) for d in found] == [(key, True)], [d.format() for d in found]


def test_quantization_keys_without_qlora_are_refused():
    found = problems(VALID + '\n[quantization]\nbackend = "hqq"\n')
    assert [d.path for d in found] == ["quantization.backend"] and "train.method = 'qlora'" in found[0].hint
