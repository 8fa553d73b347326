"""The plan of the reference-free preference stage cpo (CPO, SimPO), worked out by hand on Llama-3-8B: two
rows per pair, no reference model whatever the method, and the full logits at trl's 18 bytes each.

Llama-3-8B: 8,030,261,248 parameters, 128,256 vocabulary entries, hidden 4096."""

from __future__ import annotations

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.memory.estimate import MemoryInputs, estimate_memory
from ftc.spec import parse_spec
from tests.specs import VALID, as_dpo, replace

GIB = 1024**3
LLAMA3_8B = find_architecture("meta-llama/Meta-Llama-3-8B")
PARAMETERS, VOCAB, HIDDEN = 8_030_261_248, 128_256, 4096
CPO = replace(as_dpo(VALID), 'stage = "dpo"', 'stage = "cpo"')  # lora, cutoff_len 1024, global batch 16


def plan(text: str, method: str = "lora", micro: int = 1, hardware: str = "1xA100-80GB"):
    text = replace(text, 'method = "lora"', f'method = "{method}"')
    text = replace(text, "global_batch_size = 16", f"global_batch_size = 16\nmicro_batch_size = {micro}")
    return compile_plan(parse_spec(text, "job.toml"), parse_hardware(hardware), LLAMA3_8B)


@pytest.mark.parametrize("micro", [1, 2])
def test_cpo_counts_both_replies_full_logits_at_trls_bytes_per_logit(micro):
    found = plan(CPO + '\n[preference]\nloss_type = "simpo"\nbeta = 2.0\n', micro=micro)
    assert found.loss_head.value == "model" and "from the full logits" in found.loss_head.reason
    # micro pairs are 2 × micro rows of 1024 tokens; LoRA leaves the head frozen, so nothing more is saved for it
    assert found.memory.terms["logits"] == pytest.approx(2 * micro * 1024 * VOCAB * 18 / GIB)  # 4.40 GiB a pair
    assert any("18 bytes per logit" in said for said in found.memory.assumptions)


def test_cpo_keeps_no_reference_where_dpo_keeps_a_frozen_copy():
    cpo, dpo = plan(CPO, "full"), plan(as_dpo(VALID), "full")
    assert cpo.memory.terms["reference_model"] == 0
    assert dpo.memory.terms["reference_model"] == pytest.approx(PARAMETERS * 2 / GIB)  # bf16 copy: 14.96 GiB
    # full training trains the head: its bf16 input (2 rows × 1024 × 4096) is kept beside the logits
    assert cpo.memory.terms["logits"] == pytest.approx((2 * 1024 * VOCAB * 18 + 2 * 1024 * HIDDEN * 2) / GIB)
    assert cpo.memory.terms["weights"] == dpo.memory.terms["weights"]  # the policy itself is the same


def test_cpo_and_orpo_plan_alike_and_a_pair_is_two_rows():
    orpo = replace(CPO, 'stage = "cpo"', 'stage = "orpo"')
    assert plan(CPO).memory.terms == plan(orpo).memory.terms  # same trainer shape: paired, no reference
    common = dict(arch=LLAMA3_8B, method="lora", precision="bf16", seq_len=1024, gradient_checkpointing=False)
    pairs = estimate_memory(MemoryInputs(stage="cpo", micro_batch_size=1, **common))
    rows = estimate_memory(MemoryInputs(stage="pt", micro_batch_size=2, **common))  # pt: model loss, one row each
    assert pairs.terms["activations"] == pytest.approx(rows.terms["activations"])
    assert pairs.terms["logits"] == pytest.approx(rows.terms["logits"] * 18 / 12)  # the model's loss: 12 bytes
