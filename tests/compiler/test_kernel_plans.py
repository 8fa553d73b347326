"""train.kernels and flash attention in the plan: liger-kernel's loss where the stage's trainer lets it compute the loss
(the logits term follows it, by the arithmetic of its chunks), only its layer kernels elsewhere, and every kernel
refused where it cannot run, at its key, with the reason."""

from __future__ import annotations

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.memory.activations import Step
from ftc.compiler.memory.logits import MODEL_LOSS_BYTES_PER_LOGIT, liger_chunk_tokens, loss_head
from ftc.compiler.memory.states import holding
from ftc.compiler.plan import Plan
from ftc.errors import FtcError
from ftc.spec import parse_spec
from tests.specs import VALID, as_dpo, refusal, replace

GIB = 1024**3
# Llama-3-8B's shapes (its config.json): 128256 vocabulary entries, hidden size 4096.
VOCAB, HIDDEN = 128_256, 4096
AS_PT = (('stage = "sft"', 'stage = "pt"'), ('format = "alpaca"', 'format = "text"'))
LONG_ROWS = ("cutoff_len = 1024", "cutoff_len = 4096")
ONE_ROW = ("seed = 42", "seed = 42\nmicro_batch_size = 1")
LIGER = ("seed = 42", 'seed = 42\nkernels = ["liger"]')


def plan(hardware: str, *edits: tuple[str, str], text: str = VALID) -> Plan:
    for old, new in edits:
        text = replace(text, old, new)
    spec = parse_spec(text, "job.toml")
    return compile_plan(spec, parse_hardware(hardware), find_architecture(spec.model.name_or_path))


def test_liger_chunks_llama3_8b_rows_of_4096_tokens_by_128():
    # ceil(128256 / 4096) = 32 chunks' worth of vocabulary per hidden width: 4096 tokens / 32 = 128, a power of two.
    assert liger_chunk_tokens(4096, VOCAB, HIDDEN) == 128
    assert liger_chunk_tokens(3 * 4096, VOCAB, HIDDEN) == 512  # 384 rounded up to a power of two
    assert liger_chunk_tokens(20, VOCAB, HIDDEN) == 1  # ceil(20 / 32) = 1
    assert liger_chunk_tokens(4096, 32_000, 8192) == 1024  # a vocabulary narrower than 4 hidden widths


def test_liger_on_pt_replaces_llama3_8b_full_logits_by_its_kept_gradients_on_one_h100():
    edits = (*AS_PT, LONG_ROWS, ONE_ROW)
    stock = plan("1xH100-80GB", *edits)
    liger = plan("1xH100-80GB", *edits, LIGER)
    assert stock.loss_head.value == "model" and liger.loss_head.value == "liger"
    assert "fused linear cross-entropy" in liger.loss_head.reason and "never the full logits" in liger.loss_head.reason
    assert liger.kernels.value == ["liger"] and "computes the loss" in liger.kernels.reason
    tokens = 1 * 4096
    # Without: the model's own loss at the start of its backward, 12 bytes for each of 4096 × 128256 logits.
    full_logits = tokens * VOCAB * MODEL_LOSS_BYTES_PER_LOGIT  # 6,304,038,912 bytes
    assert stock.memory.terms["logits"] == pytest.approx(full_logits / GIB)  # 5.87 GiB
    # With: the bf16 gradient of the hidden states and each token's fp32 loss are kept (a LoRA run's head is
    # frozen, so no head gradient); a 128-token chunk of bf16 logits and its product with the head are transient.
    kept = tokens * HIDDEN * 2 + tokens * 4  # 33,570,816 bytes
    chunk = 128 * VOCAB * 2 + 128 * HIDDEN * 2  # 33,882,112 bytes
    assert liger.memory.terms["logits"] in (pytest.approx(kept / GIB), pytest.approx((kept + chunk) / GIB))
    saved = stock.memory.terms["logits"] - liger.memory.terms["logits"]
    assert saved > 5.8
    assert stock.memory.allocated_gib - liger.memory.allocated_gib > 5.5  # the peak moves elsewhere, lower
    assert any("128-token chunks of logits" in said for said in liger.memory.assumptions)
    # The layer kernels' smaller saved tensors are said, not counted: the activations stay an upper bound.
    assert any("not counted" in said for said in liger.memory.assumptions)
    assert liger.limits["max_cutoff_len"] > stock.limits["max_cutoff_len"]


def test_a_full_fine_tune_keeps_the_heads_gradient_from_liger_s_forward():
    """Llama-3-8B trained whole in fp32 under bf16 autocast, one row of 4096 tokens."""
    arch = find_architecture("meta-llama/Meta-Llama-3-8B-Instruct")
    held = holding("full", "bf16", "single", "pt")
    every_block = frozenset(range(arch.num_layers))
    step = Step(arch, held, "full", rows=1, seq_len=4096, attention="sdpa", checkpointing=False,
                adapted=frozenset(), lora_rank=8, lora_dropout=0.0, trained_blocks=every_block)  # fmt: skip
    head = loss_head(step, fused=False, on_cpu=False, scalar_head=False, liger=True)
    tokens = 4096
    # fp32 hidden states' gradient, each token's fp32 loss, and the fp32 head's weight gradient: all from the forward.
    assert head.saved == tokens * HIDDEN * 4 + tokens * 4 + VOCAB * HIDDEN * 4
    assert head.forward_peak == 128 * VOCAB * 2 + 128 * HIDDEN * 2  # one bf16 chunk of logits and its product
    assert head.backward_peak == 0  # the backward scales what was kept, in place
    assert head.head_copy == VOCAB * HIDDEN * 2  # autocast's bf16 copy of the fp32 head


def test_stages_whose_trainer_computes_the_loss_take_only_liger_s_layer_kernels():
    stock = plan("1xH100-80GB", LONG_ROWS)
    liger = plan("1xH100-80GB", LONG_ROWS, LIGER)
    assert liger.loss_head.value == stock.loss_head.value == "fused"  # trl's own head
    assert "the trainer of train.stage = 'sft' computes the loss itself" in liger.kernels.reason
    assert liger.memory.terms == stock.memory.terms
    dpo = plan("1xH100-80GB", LIGER, text=as_dpo(VALID))
    assert dpo.loss_head.value == "fused" and dpo.kernels.value == ["liger"]


def test_asking_pt_for_the_model_loss_keeps_it_beside_liger():
    kept = plan("1xH100-80GB", *AS_PT, LIGER, ("seed = 42", 'seed = 42\nloss_head = "model"'))
    assert kept.loss_head.value == "model" and "train.loss_head = 'model' keeps that loss" in kept.kernels.reason


def test_a_plan_with_kernels_reads_back_from_its_json():
    chosen = plan("1xH100-80GB", *AS_PT, LIGER)
    assert Plan.from_dict(chosen.to_dict()) == chosen
    assert chosen.to_dict()["kernels"] == ["liger"]


# -- refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hardware", ["cpu", "2xcpu", "1xAscend910B-64GB"])
def test_liger_is_refused_off_cuda_with_the_reason(hardware):
    with pytest.raises(FtcError) as refused:
        plan(hardware, *AS_PT, LIGER)
    assert refused.value.message.startswith("train.kernels = ['liger']: liger-kernel runs on GPUs only")
    assert "Triton" in refused.value.message and "remove 'liger' from train.kernels" in refused.value.hint


def test_liger_is_refused_for_a_model_type_it_has_no_kernels_for():
    with pytest.raises(FtcError) as refused:
        plan(
            "1xH100-80GB",
            LIGER,
            ('name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"', 'name_or_path = "tiiuae/falcon-7b"'),
        )
    assert "no kernels for model_type 'falcon', so it would patch nothing" in refused.value.message


def test_flash_attention_is_refused_on_the_cpu_with_the_reason():
    with pytest.raises(FtcError) as refused:
        plan("cpu", ("[data]", 'attention = "flash"\n\n[data]'))
    assert "model.attention = 'flash' runs FlashAttention" in refused.value.message
    assert "CPU processes, which have no flash kernel" in refused.value.message
    assert refused.value.hint.startswith("use 'sdpa' (or 'auto') on CPUs")
    with pytest.raises(FtcError, match="needs Ampere or newer; T4-16GB"):
        plan("1xT4-16GB", ("[data]", 'attention = "flash"\n\n[data]'))
    assert plan("1xH100-80GB", ("[data]", 'attention = "flash"\n\n[data]')).attention.value == "flash"


def test_the_cpu_honours_eager_attention_and_counts_its_scores():
    eager = plan("cpu", ("[data]", 'attention = "eager"\n\n[data]'))
    sdpa = plan("cpu")
    assert eager.attention.value == "eager" and eager.attention.reason == "set in the spec (model.attention)"
    assert eager.memory.terms["activations"] > sdpa.memory.terms["activations"]


def test_the_spec_refuses_kernels_where_no_trainer_applies_them_and_a_kernel_loss_without_its_kernel():
    ppo = replace(
        replace(VALID, 'stage = "sft"', 'stage = "ppo"'), "[output]", '[ppo]\nreward_model = "rm"\n\n[output]'
    )
    found = refusal(replace(ppo, *LIGER))
    assert (found.path, found.code) == ("train.kernels", "E-CONFLICT")
    assert "not 'ppo'" in found.message
    text = VALID
    for old, new in AS_PT:
        text = replace(text, old, new)
    found = refusal(replace(text, "seed = 42", 'seed = 42\nloss_head = "liger"'))
    assert found.path == "train.loss_head" and "train.kernels does not list 'liger'" in found.message
    found = refusal(replace(VALID, "seed = 42", 'seed = 42\nkernels = ["liger"]\nloss_head = "liger"'))
    assert found.path == "train.loss_head" and "only through the 'fused' head or the 'model' head" in found.message
    found = refusal(replace(VALID, "seed = 42", 'seed = 42\nkernels = ["liger", "liger"]'))
    assert (found.path, found.message) == ("train.kernels", "train.kernels names 'liger' more than once")
    found = refusal(replace(VALID, "seed = 42", 'seed = 42\nkernels = ["unsloth"]'))
    assert found.path == "train.kernels[0]" and "not one of: liger" in found.message
