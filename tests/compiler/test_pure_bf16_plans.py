"""train.pure_bf16 on published shapes, with the arithmetic here: Llama-3-8B full fine-tuning with Muon on one
A100-80GB, which fp32 master weights do not fit and bf16 weights do."""

from __future__ import annotations

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.memory.states import holding
from ftc.errors import FtcError
from ftc.spec import parse_spec
from tests.compiler.test_optimizer_memory import GIB, LLAMA3, MATRICES, OUTSIDE_BLOCK_MATRICES, TOTAL, L
from tests.spec.test_optimizer_rules import FULL, _with
from tests.specs import replace


def _plan(text: str, hardware: str = "1xA100-80GB"):
    return compile_plan(parse_spec(text, "job.toml"), parse_hardware(hardware), LLAMA3)


def _pure(text: str) -> str:
    return replace(text, "seed = 42", "seed = 42\npure_bf16 = true")


def test_muon_full_fine_tuning_of_llama3_8b_fits_one_a100_in_pure_bf16():
    assert TOTAL == 8_030_261_248
    mixed, pure = _plan(_with("muon")), _plan(_pure(_with("muon")))
    assert not mixed.fits  # fp32 weights, gradients and moments, and bf16 autocast copies of every matrix
    assert pure.fits and (pure.strategy.value, pure.offload.value) == ("single", "none")
    terms = pure.memory.terms
    assert terms["weights"] * GIB == TOTAL * 2  # 14.96 GiB: bf16, no fp32 copy and no autocast copies
    assert terms["gradients"] * GIB == TOTAL * 2  # bf16 gradients, as the parameters are
    # Muon's momentum for the blocks' matrices and AdamW's two moments for the rest, bf16 like the weights.
    hidden = L * sum(m * n for m, n in MATRICES)
    assert terms["optimizer"] * GIB == hidden * 2 + OUTSIDE_BLOCK_MATRICES * 2 * 2  # 16.92 GiB
    assert terms["master_weights"] == 0
    assert mixed.memory.terms["gradients"] * GIB == TOTAL * 4  # what the default holds: twice as much
    assert any(line.startswith("pure bf16:") for line in pure.memory.assumptions)


def test_a_full_run_that_does_not_fit_is_told_what_pure_bf16_would_need():
    mixed = _plan(_with("muon"))
    (idea,) = [note for note in mixed.notes if note.startswith("train.pure_bf16 = true")]
    assert idea.endswith("GiB at micro-batch 1 (single)")
    needed = float(idea.rsplit("need ", 1)[1].split(" GiB")[0])
    at_one = replace(
        _pure(_with("muon")),
        "pure_bf16 = true",
        "pure_bf16 = true\nmicro_batch_size = 1\ngradient_checkpointing = true",
    )
    assert _plan(at_one).memory.reserved_gib == pytest.approx(needed, abs=0.05)
    adapters = _plan(replace(_with("adamw"), 'method = "full"', 'method = "lora"'), "1xT4-16GB")
    assert not any(note.startswith("train.pure_bf16") for note in adapters.notes)  # LoRA trains no base weights


def test_holding_counts_bf16_trained_weights_and_no_autocast_copies():
    for method in ("full", "freeze"):
        held = holding(method, "bf16", "single", pure_half=True)
        assert (held.trainable, held.residual, held.autocast_copies) == (2, 2, False)
        assert holding(method, "bf16", "single").trainable == 4  # the default: fp32 under autocast


def test_auto_layouts_keep_to_replicas():
    assert _plan(FULL, "8xA100-80GB").strategy.value == "zero1"  # AdamW with fp32 weights shards its moments
    plan = _plan(_pure(FULL), "8xA100-80GB")  # ZeRO would add its own fp32 master copy: replicas or nothing
    assert (plan.strategy.value, plan.offload.value) == ("ddp", "none")


def test_the_cpu_plan_refuses_auto_precision_resolving_to_fp32():
    with pytest.raises(
        FtcError, match=r"train.pure_bf16 holds the trained weights in bf16, but the plan computes in fp32"
    ):
        _plan(_pure(FULL), "cpu")
    bf16 = _plan(replace(_pure(FULL), "pure_bf16 = true", 'pure_bf16 = true\nprecision = "bf16"'), "cpu")
    assert bf16.precision.value == "bf16"
