"""Each optimizer's state on published shapes, with the arithmetic here: Llama-3-8B full fine-tuning.

Llama-3-8B: hidden 4096, 32 blocks of q/o 4096 × 4096, k/v 4096 × 1024, gate/up/down 4096 × 14336, a 128256-token
embedding and an untied head, two 4096-wide norms per block and a final one; 8,030,261,248 parameters.
"""

from __future__ import annotations

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.memory.states import ADAM_8BIT_BYTES, OptimizerSettings, holding, model_states
from ftc.errors import FtcError
from ftc.spec import parse_spec
from tests.spec.test_optimizer_rules import _with

LLAMA3 = find_architecture("meta-llama/Meta-Llama-3-8B")
H, FF, V, L = 4096, 14336, 128256, 32
MATRICES = [(H, H), (H, 1024), (H, 1024), (H, H), (H, FF), (H, FF), (FF, H)]  # q, k, v, o, gate, up, down
PER_BLOCK = sum(m * n for m, n in MATRICES) + 2 * H
TOTAL = L * PER_BLOCK + 2 * V * H + H
OUTSIDE_BLOCK_MATRICES = TOTAL - L * sum(m * n for m, n in MATRICES)  # embeddings, head, norms
GIB = 1024**3


def _optimizer_bytes(optimizer: str, settings: OptimizerSettings | None = None) -> float:
    settings = settings or OptimizerSettings()
    states = model_states(LLAMA3, "full", "bf16", "single", 1, "none", optimizer, None, 8, "all", 2, settings=settings)
    return states.optimizer


def test_the_shapes_are_llama3_8b():
    assert TOTAL == 8_030_261_248


def test_adamw_keeps_two_fp32_moments_per_weight():
    assert _optimizer_bytes("adamw") == TOTAL * 2 * 4  # 59.8 GiB


def test_galore_keeps_rank_r_moments_and_projection_for_the_matrices_and_adam_for_the_rest():
    rank = 128
    low_rank = L * sum(2 * rank * max(m, n) * 4 + rank * min(m, n) * 4 for m, n in MATRICES)
    expected = low_rank + OUTSIDE_BLOCK_MATRICES * 2 * 4
    found = _optimizer_bytes("galore_adamw", OptimizerSettings(rank=rank))
    assert found == expected
    assert round(found / GIB, 2) == 9.99
    # The paper's count for an m × n target (m ≤ n): mr + 2nr in place of 2mn; q_proj's 3 × 128 / 8192:
    q = 2 * rank * H * 4 + rank * H * 4
    assert q / (2 * H * H * 4) == pytest.approx(3 * rank / (2 * H))


def test_8bit_galore_quantizes_every_moment_and_keeps_the_projection_fp32():
    rank = 128
    low_rank = L * sum(2 * rank * max(m, n) * ADAM_8BIT_BYTES / 2 + rank * min(m, n) * 4 for m, n in MATRICES)
    expected = low_rank + OUTSIDE_BLOCK_MATRICES * ADAM_8BIT_BYTES
    assert _optimizer_bytes("galore_adamw_8bit", OptimizerSettings(rank=rank)) == pytest.approx(expected)


def test_galore_on_named_targets_projects_only_those():
    rank = 64
    q_and_v = L * (2 * rank * H * 4 + rank * H * 4 + 2 * rank * H * 4 + rank * 1024 * 4)
    rest = TOTAL - L * (H * H + H * 1024)
    found = _optimizer_bytes("galore_adamw", OptimizerSettings(rank=rank, targets=("q_proj", "v_proj")))
    assert found == q_and_v + rest * 8


def test_apollo_mini_at_rank_one_is_nearly_sgd():
    found = _optimizer_bytes("apollo_adamw", OptimizerSettings(rank=1))
    matrices = L * sum(2 * max(m, n) * 4 + min(m, n) * 4 for m, n in MATRICES)
    assert found == matrices + OUTSIDE_BLOCK_MATRICES * 8
    assert matrices < 0.001 * L * sum(m * n for m, n in MATRICES) * 8  # the blocks' moments all but vanish


def test_adam_mini_keeps_the_first_moment_and_a_second_per_head_neuron_or_token():
    heads, kv_heads = 32, 8
    second = L * (heads + kv_heads + 1024 + H + FF + FF + H) + 2 * V + (2 * L + 1)
    assert _optimizer_bytes("adam_mini") == (TOTAL + second) * 4
    assert _optimizer_bytes("adam_mini") / _optimizer_bytes("adamw") == pytest.approx(
        0.5, abs=0.001
    )  # the paper: 45-50% less


def test_muon_keeps_one_buffer_for_the_hidden_matrices_and_adam_moments_for_the_rest():
    hidden = L * sum(m * n for m, n in MATRICES)
    assert _optimizer_bytes("muon") == hidden * 4 + OUTSIDE_BLOCK_MATRICES * 8
    assert _optimizer_bytes("muon") / _optimizer_bytes("adamw") == pytest.approx(0.565, abs=0.001)


def test_badam_steps_one_block_in_fp32_over_a_half_precision_model():
    states = model_states(LLAMA3, "full", "bf16", "single", 1, "none", "badam", None, 8, "all", 2)
    assert states.weights == TOTAL * 2  # the whole model in bf16
    assert states.optimizer == PER_BLOCK * 2 * 4  # AdamW's moments of the active block, fp32
    assert states.master_weights == PER_BLOCK * 4  # its fp32 copy
    assert states.gradients == PER_BLOCK * (2 + 4)  # its bf16 gradient and the fp32 copy's
    assert states.head_gradient == 0 and states.autocast_copies == 0
    assert holding("full", "bf16", "single", "sft", "badam").trainable == 2


def test_layerwise_stepping_keeps_one_gradient_alive():
    layerwise = model_states(
        LLAMA3,
        "full",
        "bf16",
        "single",
        1,
        "none",
        "galore_adamw",
        None,
        8,
        "all",
        2,
        settings=OptimizerSettings(rank=128, layerwise=True),
    )
    assert layerwise.gradients == V * H * 4  # the widest weight, the embedding, in fp32


def _plan(optimizer: str, extra: str = "", hardware: str = "1xA100-80GB"):
    return compile_plan(parse_spec(_with(optimizer, extra=extra), "job.toml"), parse_hardware(hardware), LLAMA3)


def test_a100_plan_adamw_offloads_where_badam_and_layerwise_galore_fit_one_device():
    adamw = _plan("adamw")
    assert (adamw.strategy.value, adamw.offload.value) == ("zero2", "optimizer")
    badam = _plan("badam")
    assert (badam.strategy.value, badam.offload.value, badam.fits) == ("single", "none", True)
    galore = _plan("galore_adamw_8bit", "\n[galore]\nlayerwise = true\n")
    assert (galore.strategy.value, galore.offload.value, galore.fits) == ("single", "none", True)
    assert galore.micro_batch_size.value == 16 and galore.gradient_accumulation_steps.value == 1
    assert galore.memory.terms["optimizer"] < adamw.memory.terms["optimizer"] + adamw.memory.host_gib


def test_an_optimizer_that_cannot_shard_says_adamw_could_when_nothing_fits():
    plan = _plan("muon")
    assert not plan.fits
    assert any(note.startswith("train.optimizer = 'adamw', which can shard (zero2") for note in plan.notes)
    assert any("'qlora' (4-bit) with adamw" in note for note in plan.notes)


def test_a_galore_rank_past_a_targets_shorter_side_is_refused_at_the_rank():
    with pytest.raises(FtcError, match=r"galore.rank = 2048 is larger than k_proj's shorter side \(4096 × 1024\)"):
        _plan("galore_adamw", "\n[galore]\nrank = 2048\n")
    assert _plan("galore_adamw", '\n[galore]\nrank = 2048\ntarget = ["q_proj"]\n').memory is not None


def test_adam_mini_refuses_heads_that_are_not_the_hidden_width():
    qwen3 = find_architecture("Qwen/Qwen3-4B")  # 32 heads of 128: 4096 wide over a 2560 hidden size
    assert qwen3.q_width != qwen3.hidden_size
    spec = parse_spec(replace_model(_with("adam_mini"), "Qwen/Qwen3-4B"), "job.toml")
    with pytest.raises(FtcError, match="adam_mini"):
        compile_plan(spec, parse_hardware("1xA100-80GB"), qwen3)


def test_one_device_optimizers_refuse_several():
    with pytest.raises(FtcError, match="'badam' runs on one device"):
        _plan("badam", hardware="2xA100-80GB")
    with pytest.raises(FtcError, match="galore.layerwise steps each weight inside the backward"):
        _plan("galore_adamw", "\n[galore]\nlayerwise = true\n", hardware="2xA100-80GB")


def replace_model(text: str, name: str) -> str:
    return text.replace("meta-llama/Meta-Llama-3-8B-Instruct", name)


def test_a_projecting_optimizer_that_does_not_fit_is_told_what_layer_wise_stepping_would_need():
    mini = '\n[apollo]\nrank = 1\nscale_type = "tensor"\nscale = 128.0\n'
    plan = _plan("apollo_adamw", mini)
    assert not plan.fits
    (idea,) = [note for note in plan.notes if note.startswith("apollo.layerwise = true")]
    needed = float(idea.rsplit("need ", 1)[1].removesuffix(" GiB"))
    layerwise = _plan("apollo_adamw", mini + "layerwise = true\n")
    assert layerwise.fits and (layerwise.strategy.value, layerwise.offload.value) == ("single", "none")
    assert layerwise.memory.reserved_gib == pytest.approx(needed, abs=0.05)


def test_8bit_galore_is_refused_off_cuda_with_what_breaks():
    spec = parse_spec(_with("galore_adamw_8bit"), "job.toml")
    with pytest.raises(FtcError, match=r"runs on cuda only: it steps through galore-torch's 8-bit AdamW"):
        compile_plan(spec, parse_hardware("cpu"), LLAMA3)
    assert compile_plan(parse_spec(_with("galore_adamw"), "job.toml"), parse_hardware("cpu"), LLAMA3).memory
