"""plan.loss_head: trl's chunked head on accelerators, the model's own (faster) loss on the CPU while its logits
stay small, and the memory estimate following whichever runs."""

from __future__ import annotations

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.kernel_plan import MODEL_LOSS_MAX_LOGITS_GIB
from ftc.compiler.memory.logits import MODEL_LOSS_BYTES_PER_LOGIT
from ftc.compiler.plan import Plan
from ftc.spec import parse_spec
from tests.specs import VALID, as_dpo, refusal, replace


def plan(hardware: str = "cpu", *edits: tuple[str, str]) -> Plan:
    text = VALID
    for old, new in edits:
        text = replace(text, old, new)
    spec = parse_spec(text, "job.toml")
    return compile_plan(spec, parse_hardware(hardware), find_architecture(spec.model.name_or_path))


SHORT_ROWS = ("cutoff_len = 1024", "cutoff_len = 128")  # 16 rows of 128 tokens, micro-batch 8 on the CPU
ASK_MODEL = ("seed = 42", 'seed = 42\nloss_head = "model"')


def test_the_cpu_takes_the_model_loss_while_its_logits_are_small():
    chosen = plan("cpu", SHORT_ROWS)
    logits_gib = 8 * 128 * 128_256 * MODEL_LOSS_BYTES_PER_LOGIT / 1024**3  # Llama 3's vocabulary
    assert logits_gib < MODEL_LOSS_MAX_LOGITS_GIB
    assert chosen.loss_head.value == "model"
    assert "faster" in chosen.loss_head.reason and f"{logits_gib:.1f} GiB" in chosen.loss_head.reason
    fused = plan("cpu", SHORT_ROWS, ("seed = 42", 'seed = 42\nloss_head = "fused"'))
    assert fused.loss_head.reason == "set in the spec (train.loss_head)"
    # The logits term follows the head: the model's loss holds the full logits, the chunked head a tile
    # (and, on the CPU, a few fp32 copies of it).
    assert chosen.memory.terms["logits"] >= logits_gib > fused.memory.terms["logits"]


def test_the_cpu_keeps_the_chunked_head_when_the_full_logits_would_be_large():
    chosen = plan("cpu")  # 8 rows of 1024 tokens × 128k entries: 12 bytes each at the peak
    assert chosen.loss_head.value == "fused"
    assert "11.7 GiB of logits" in chosen.loss_head.reason


def test_accelerators_take_the_chunked_head_unless_the_spec_asks():
    chosen = plan("1xA100-80GB", SHORT_ROWS)
    assert chosen.loss_head.value == "fused" and "never holds the full logits" in chosen.loss_head.reason
    asked = plan("1xA100-80GB", SHORT_ROWS, ASK_MODEL)
    assert asked.loss_head.value == "model"
    at_one_row = [p.limits["max_micro_batch_size"] for p in (chosen, asked)]
    assert at_one_row[1] < at_one_row[0]  # the logits now count: fewer rows fit


@pytest.mark.parametrize(("stage", "head"), [("dpo", "fused"), ("kto", "fused"), ("pt", "model"), ("rm", "model")])
def test_a_stage_with_one_way_to_its_loss_takes_it_and_says_so(stage, head):
    edits = [SHORT_ROWS, ('stage = "sft"', f'stage = "{stage}"')]
    if stage in ("dpo", "rm"):
        edits.append(('format = "alpaca"', 'format = "preference"'))
    if stage == "kto":
        edits += [('format = "alpaca"', 'format = "kto"'), ("global_batch_size = 16", "global_batch_size = 16")]
    if stage == "pt":
        edits.append(('format = "alpaca"', 'format = "text"'))
    chosen = plan("cpu", *edits)
    assert chosen.loss_head.value == head
    assert f"the only way train.stage = '{stage}' computes its loss" in chosen.loss_head.reason


def test_asking_a_stage_for_a_head_it_does_not_have_is_refused_at_the_key():
    found = refusal(replace(as_dpo(VALID), *ASK_MODEL))
    assert (found.path, found.code) == ("train.loss_head", "E-CONFLICT")
    assert "only through the 'fused' head" in found.message


def test_a_plan_written_before_the_decision_existed_reads_with_its_default():
    written = plan("cpu", SHORT_ROWS).to_dict()
    del written["loss_head"], written["reasons"]["loss_head"]
    assert Plan.from_dict(written).loss_head.value == "model"
