"""The memory estimate, term by term, on cases worked out by hand.

Llama-3-8B: 8,030,261,248 parameters, of which 6,979,321,856 sit in the decoder's linear layers and
525,336,576 in each of the embedding and the (untied) head; 32 layers, hidden 4096, 32 heads, vocab
128,256. LoRA rank 8 on every linear layer adds 20,971,520 parameters. The measured side of the
story (real steps on the CPU) is benchmarks/memory_accuracy.py.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from ftc.compiler.architectures import ARCHITECTURES, find_architecture
from ftc.compiler.memory.activations import Step, adapted_linears, saved_by_layer
from ftc.compiler.memory.estimate import (
    TERMS,
    MemoryInputs,
    estimate_memory,
    largest_micro_batch,
    longest_seq_len,
)
from ftc.compiler.memory.logits import loss_head
from ftc.compiler.memory.states import holding, model_states
from ftc.errors import FtcError
from ftc.quantizers import NF4_BYTES_PER_WEIGHT

GIB = 1024**3
LLAMA3_8B = find_architecture("meta-llama/Meta-Llama-3-8B")
PARAMETERS = 8_030_261_248
LINEAR_PARAMETERS = 6_979_321_856
LORA_PARAMETERS = 20_971_520
H100 = {"capacity_gib": 79.6, "context_gib": 0.5}


def inputs(**changes) -> MemoryInputs:
    base = MemoryInputs(
        arch=LLAMA3_8B,
        method="lora",
        stage="sft",
        precision="bf16",
        micro_batch_size=1,
        seq_len=2048,
        gradient_checkpointing=False,
        **H100,
    )
    return replace(base, **changes)


def states(**changes):
    given = inputs(**changes)
    return model_states(
        given.arch,
        given.method,
        given.precision,
        given.strategy,
        given.world_size,
        given.offload,
        given.optimizer,
        given.quantization_bits,
        given.lora_rank,
        given.adapter_targets,
        given.freeze_trainable_layers,
        given.freeze_trainable_modules,
        given.freeze_extra_modules,
    )


# --- weights ---------------------------------------------------------------------------------


def test_lora_keeps_the_frozen_base_in_bf16():
    assert states().weights / GIB == pytest.approx(PARAMETERS * 2 / GIB) == pytest.approx(14.96, abs=0.005)


def test_full_fine_tuning_keeps_fp32_weights_and_autocast_adds_a_bf16_copy_of_each_matrix():
    # ftc loads fp32 for full fine-tuning; autocast caches a bf16 copy of every decoder matrix from the
    # forward until its backward (the head's copy belongs to the unfused loss; fused here).
    estimate = estimate_memory(inputs(method="full", fused_cross_entropy=True))
    assert estimate.terms["weights"] == pytest.approx((PARAMETERS * 4 + LINEAR_PARAMETERS * 2) / GIB)
    assert estimate.terms["weights"] == pytest.approx(29.92 + 13.00, abs=0.01)


def test_fp32_compute_has_no_autocast_copies():
    estimate = estimate_memory(inputs(method="full", precision="fp32", fused_cross_entropy=True))
    assert estimate.terms["weights"] == pytest.approx(PARAMETERS * 4 / GIB)


def test_qlora_4bit_weights_are_half_a_byte_plus_double_quantized_constants():
    assert NF4_BYTES_PER_WEIGHT == pytest.approx(0.5 + 1 / 64 + 4 / (64 * 256))
    quantized = LINEAR_PARAMETERS * NF4_BYTES_PER_WEIGHT
    unquantized = (PARAMETERS - LINEAR_PARAMETERS) * 2  # embedding, head and norms stay bf16
    assert states(method="qlora", quantization_bits=4).weights == pytest.approx(quantized + unquantized)
    assert states(method="qlora", quantization_bits=4).weights / GIB == pytest.approx(5.31, abs=0.01)


def test_qlora_8bit_weights_are_a_byte_plus_a_scale_per_row():
    weights = states(method="qlora", quantization_bits=8).weights
    assert LINEAR_PARAMETERS + (PARAMETERS - LINEAR_PARAMETERS) * 2 < weights
    assert weights < LINEAR_PARAMETERS * 1.01 + (PARAMETERS - LINEAR_PARAMETERS) * 2


# --- gradients, optimizer, master weights ------------------------------------------------------


def test_adamw_moments_of_8b_fp32_parameters():
    assert states(method="full").optimizer / GIB == pytest.approx(59.83, abs=0.01)
    assert states(method="full").gradients / GIB == pytest.approx(PARAMETERS * 4 / GIB)


def test_lora_trains_only_the_adapter_in_fp32():
    lora = states()
    assert lora.adapters == LORA_PARAMETERS * 4
    assert lora.gradients == LORA_PARAMETERS * 4
    assert lora.optimizer == LORA_PARAMETERS * 8


# Llama-3-8B's blocks: attention 4096 × (4096 + 2 × 1024) + 4096 × 4096, MLP 3 × 4096 × 14336, two RMSNorms.
BLOCK_ATTENTION = 4096 * 6144 + 4096 * 4096
BLOCK_MLP = 3 * 4096 * 14336
EMBEDDING = 128_256 * 4096


@pytest.mark.parametrize(
    ("modules", "extra", "trained"),
    [
        ("all", (), 2 * (BLOCK_ATTENTION + BLOCK_MLP + 2 * 4096)),
        (("mlp",), (), 2 * BLOCK_MLP),
        (("self_attn", "input_layernorm"), (), 2 * (BLOCK_ATTENTION + 4096)),
        (("q_proj",), ("lm_head", "norm"), 2 * 4096 * 4096 + EMBEDDING + 4096),
    ],
)
def test_freeze_trains_the_named_modules_in_fp32_with_their_gradients_and_moments(modules, extra, trained):
    frozen = states(method="freeze", freeze_trainable_modules=modules, freeze_extra_modules=extra)
    assert frozen.gradients == trained * 4  # the trained weights are upcast to fp32
    assert frozen.optimizer == trained * 8  # two fp32 AdamW moments each
    assert frozen.weights == trained * 4 + (PARAMETERS - trained) * 2  # the rest stays bf16


def test_freeze_training_the_head_or_the_embedding_changes_what_the_step_holds():
    plain = estimate_memory(inputs(method="freeze"))
    head = estimate_memory(inputs(method="freeze", freeze_extra_modules=("lm_head",)))
    # The head's gradient: 128,256 × 4096 fp32 values, there from the start of the backward.
    assert head.terms["gradients"] - plain.terms["gradients"] == pytest.approx(EMBEDDING * 4 / GIB)
    embedding = estimate_memory(inputs(method="freeze", freeze_extra_modules=("embed_tokens",)))
    # Its gradient flows through all 32 blocks, which then keep their activations, not only the top two.
    assert embedding.terms["activations"] > 10 * plain.terms["activations"]


def test_eight_bit_adamw_is_about_two_bytes_per_parameter():
    assert states(method="full", optimizer="adamw_8bit").optimizer / PARAMETERS == pytest.approx(2.03, abs=0.01)


@pytest.mark.parametrize("stage", ["zero1", "zero2", "zero3"])
def test_zero_stages_shard_what_they_promise(stage):
    one, eight = (
        estimate_memory(inputs(method="full", strategy=stage, world_size=world, fused_cross_entropy=True))
        for world in (1, 8)
    )
    # DeepSpeed in bf16: bf16 weights and gradients, an fp32 master copy and fp32 moments.
    assert one.terms["optimizer"] == pytest.approx(PARAMETERS * 8 / GIB)
    assert one.terms["master_weights"] == pytest.approx(PARAMETERS * 4 / GIB)
    assert eight.terms["optimizer"] == pytest.approx(one.terms["optimizer"] / 8)
    assert eight.terms["master_weights"] == pytest.approx(one.terms["master_weights"] / 8)
    grads_divided = stage in ("zero2", "zero3")
    assert eight.terms["gradients"] == pytest.approx(one.terms["gradients"] / (8 if grads_divided else 1))
    sharded, whole = (states(method="full", strategy=stage, world_size=w).weights for w in (8, 1))
    assert sharded == pytest.approx(whole / (8 if stage == "zero3" else 1))
    assert whole == PARAMETERS * 2


def test_zero3_gathers_the_largest_unit_twice_in_bf16():
    gathered = states(method="full", strategy="zero3", world_size=8).gathered
    assert gathered == 2 * 525_336_576 * 2  # the embedding is the largest unit: in use and prefetched


def test_ddp_buckets_double_the_gradients():
    single, ddp = (
        estimate_memory(inputs(method="full", strategy=s, fused_cross_entropy=True)) for s in ("single", "ddp")
    )
    assert ddp.terms["gradients"] == pytest.approx(2 * single.terms["gradients"])


def test_offload_moves_optimizer_and_master_to_host():
    kept = estimate_memory(inputs(method="full", strategy="zero2", world_size=8))
    offloaded = estimate_memory(inputs(method="full", strategy="zero2", world_size=8, offload="optimizer"))
    assert offloaded.terms["optimizer"] == 0 and offloaded.terms["master_weights"] == 0
    moved = kept.terms["optimizer"] + kept.terms["master_weights"]
    fp32_gradient_partition = PARAMETERS * 4 / 8 / GIB  # where ZeRO-Offload's CPU optimizer steps
    assert offloaded.host_gib - kept.host_gib == pytest.approx(moved + fp32_gradient_partition)
    with_params = estimate_memory(inputs(method="full", strategy="zero3", world_size=8, offload="optimizer+params"))
    assert with_params.terms["gradients"] == 0
    assert with_params.terms["weights"] == pytest.approx(2 * 525_336_576 * 2 / GIB)  # only what is gathered


# --- which moment is the peak --------------------------------------------------------------------


def test_without_accumulation_the_optimizer_step_can_be_the_peak():
    # 8B full fine-tuning, one short row: weights + gradients + moments outweigh the activations.
    short = {"method": "full", "seq_len": 256, "fused_cross_entropy": True}
    once = estimate_memory(inputs(**short, gradient_accumulation=False))
    assert once.terms["weights"] == pytest.approx(PARAMETERS * 4 / GIB)
    assert once.terms["gradients"] == pytest.approx(PARAMETERS * 4 / GIB)
    assert once.terms["activations"] == 0 and once.terms["logits"] == 0
    assert "optimizer step" in once.assumptions[0]
    # Accumulating, the gradients also live through the forward, on top of the activations.
    accumulating = estimate_memory(inputs(**short))
    assert accumulating.allocated_gib > once.allocated_gib
    assert accumulating.terms["activations"] > 0


# --- logits --------------------------------------------------------------------------------------


def test_unfused_logits_are_twelve_bytes_each_at_the_start_of_the_backward():
    # log-softmax's fp32 output, nll_loss's fp32 gradient and log-softmax's fp32 gradient
    for micro in (1, 2):
        estimate = estimate_memory(inputs(micro_batch_size=micro))
        assert estimate.terms["logits"] == pytest.approx(micro * 2048 * 128_256 * 12 / GIB)
    assert estimate.terms["logits"] == pytest.approx(5.87, abs=0.01)


def test_fused_loss_keeps_one_tile_not_the_logits():
    step = _step()
    head = loss_head(step, fused=True, on_cpu=False, scalar_head=False)
    scored = 2047  # the last position predicts nothing
    buffer = scored * 32768 * 2  # one bf16 tile of at most 4096 tokens × 32768 vocabulary entries
    hidden_gradient = scored * 4096 * 4  # accumulated in fp32
    saved = scored * 4096 * 2 + scored * 16  # the sliced hidden states and per-token statistics
    assert head.saved == saved
    assert head.backward_peak == buffer + hidden_gradient
    wider = loss_head(replace(step, arch=replace(LLAMA3_8B, vocab_size=256_000)), True, False, False)
    assert wider == head  # the tile does not grow with the vocabulary
    unfused = estimate_memory(inputs(fused_cross_entropy=False))
    fused = estimate_memory(inputs(fused_cross_entropy=True))
    assert unfused.allocated_gib - fused.allocated_gib > 2.5  # most of the 2.94 GiB of logits


def test_the_model_loss_adds_its_metric_chunks_to_the_forward_only_where_the_stage_logs_them():
    step = _step()
    plain = loss_head(step, fused=False, on_cpu=True, scalar_head=False)
    with_metrics = loss_head(step, fused=False, on_cpu=True, scalar_head=False, token_metrics=True)
    # entropy and accuracy a chunk of 128 positions at a time: three fp32 copies of its logits
    assert with_metrics.forward_peak - plain.forward_peak == 128 * 128_256 * 3 * 4
    assert (with_metrics.saved, with_metrics.backward_peak) == (plain.saved, plain.backward_peak)
    # sft through the model's loss logs them (it could have run trl's head); pt's loss is the model's alone
    sft, pt = (estimate_memory(inputs(stage=s, micro_batch_size=1, seq_len=128)) for s in ("sft", "pt"))
    assert sft.terms["logits"] > pt.terms["logits"]


def test_a_reward_model_has_no_vocabulary_wide_logits():
    assert estimate_memory(inputs(stage="rm")).terms["logits"] < 0.1


# --- activations ---------------------------------------------------------------------------------


def _step(**changes) -> Step:
    given = inputs(**changes)
    return Step(
        arch=given.arch,
        held=holding(given.method, given.precision, given.strategy),
        method=given.method,
        rows=given.micro_batch_size,
        seq_len=given.seq_len,
        attention=given.attention,
        checkpointing=given.gradient_checkpointing,
        adapted=adapted_linears(given.arch, "all"),
        lora_rank=8,
        lora_dropout=0.0,
        trained_blocks=frozenset(),
    )


def test_lora_bf16_layer_keeps_what_was_measured():
    """Per token of one middle block, bf16 base with an fp32 adapter under autocast, SDPA with a padding mask."""
    hidden, q, inter, heads, rank = 4096, 4096, 14336, 32, 8
    per_token = (
        2 * 4 * hidden  # both RMSNorms keep their input upcast to fp32
        + 2 * (5 * hidden + q + inter)  # each adapted layer keeps its own bf16 copy of its input
        + 7 * rank * 2  # A's rank-wide outputs
        + 2 * 3 * q  # q, and k and v repeated to every head
        + 2 * q  # SDPA's output
        + 4 * heads  # and its log-sum-exp
        + 2 * 3 * inter  # gate's, up's and the activation's outputs
    )
    seq = 2048
    per_key = 2  # SDPA's bf16 mask bias: batch × seq² per layer
    assert saved_by_layer(_step(), 5) == seq * per_token + seq * seq * per_key


def test_eager_attention_adds_the_seq_squared_probabilities():
    eager, sdpa = (saved_by_layer(_step(attention=kind), 5) for kind in ("eager", "sdpa"))
    seq, heads = 2048, 32
    probabilities = heads * seq * seq * (4 + 2)  # fp32 softmax output and its bf16 copy
    assert eager - sdpa == probabilities - seq * seq * 2 - seq * 4 * heads  # minus SDPA's bias and log-sum-exp
    whole_eager, whole_sdpa = (estimate_memory(inputs(attention=kind)) for kind in ("eager", "sdpa"))
    assert whole_eager.terms["activations"] - whole_sdpa.terms["activations"] > 0.9 * 31 * probabilities / GIB


def test_checkpointing_keeps_layer_inputs_and_one_recomputed_layer():
    plain, checkpointed = (
        estimate_memory(inputs(micro_batch_size=4, seq_len=4096, fused_cross_entropy=True, gradient_checkpointing=c))
        for c in (False, True)
    )
    layer_inputs = 32 * 4 * 4096 * 4096 * 2 / GIB  # each block's bf16 input
    one_layer = plain.terms["activations"] / 32
    beyond_inputs = checkpointed.terms["activations"] - layer_inputs
    assert one_layer <= beyond_inputs <= 2 * one_layer
    assert checkpointed.terms["activations"] < plain.terms["activations"] / 4


def test_paired_stages_double_the_rows():
    sft, dpo = (estimate_memory(inputs(stage=s, fused_cross_entropy=True)) for s in ("sft", "dpo"))
    assert dpo.terms["activations"] == pytest.approx(2 * sft.terms["activations"], rel=0.01)


# --- reference models ----------------------------------------------------------------------------


def test_reference_models_by_stage():
    def reference(stage: str, method: str) -> float:
        return estimate_memory(inputs(stage=stage, method=method)).terms["reference_model"]

    assert reference("dpo", "full") == pytest.approx(PARAMETERS * 2 / GIB)
    assert reference("kto", "full") == pytest.approx(PARAMETERS * 2 / GIB)
    assert reference("dpo", "lora") == 0  # peft disables the adapter instead
    assert reference("orpo", "full") == 0
    assert reference("sft", "full") == 0
    # PPO: a reward model beside the policy, and a reference copy unless an adapter can be disabled;
    # the value is a head on the policy, no second trained model
    assert reference("ppo", "lora") == pytest.approx(PARAMETERS * 2 / GIB)
    assert reference("ppo", "full") == pytest.approx(2 * PARAMETERS * 2 / GIB)
    assert (reference("grpo", "full"), reference("grpo", "lora")) == (pytest.approx(PARAMETERS * 2 / GIB), 0)


def test_sampling_holds_the_kv_cache_at_its_longest():
    from ftc.compiler.memory.sampling import sampling_memory

    sampled = sampling_memory(LLAMA3_8B, rows=4, seq_len=1024, precision="bf16")
    kv = 2 * 32 * 4 * 1024 * (8 * 128) * 2  # keys and values, 32 layers, 8 kv heads of 128, bf16
    prefill = 3 * 4 * 1024 * 14_336 * 2  # gate, up and their product over the prompt, one block
    assert sampled.cache == kv + prefill and sampled.logits == 4 * 128_256 * 4


def test_grpo_samples_a_whole_step_at_once_and_that_can_be_the_peak():
    # 64 replies per process per step (micro 2 × accumulation 32), checkpointed training: the cache of all
    # 64 replies outweighs what one checkpointed micro-batch keeps
    grpo = estimate_memory(
        inputs(stage="grpo", micro_batch_size=2, examples_per_process=64, gradient_checkpointing=True)
    )
    assert "the peak is at sampling (the KV cache)" in " ".join(grpo.assumptions)
    assert grpo.terms["gradients"] == 0 and grpo.terms["activations"] > 64 * 2048 * 32 * 2048 * 2 / GIB
    # ppo samples a micro-batch at a time, sft not at all: there training stays the peak
    for stage in ("ppo", "sft"):
        other = estimate_memory(
            inputs(stage=stage, micro_batch_size=2, examples_per_process=64, gradient_checkpointing=True)
        )
        assert "the peak is at sampling" not in " ".join(other.assumptions)
        assert other.allocated_gib < grpo.allocated_gib


# --- totals, allocator and host ------------------------------------------------------------------


def test_terms_are_named_and_add_up():
    estimate = estimate_memory(inputs())
    assert tuple(estimate.terms) == TERMS
    assert estimate.allocated_gib == pytest.approx(sum(estimate.terms.values()))
    assert estimate.terms["context"] == 0.5


def test_reserved_adds_allocator_slack_on_cuda_only():
    cuda = estimate_memory(inputs())
    assert cuda.reserved_gib - cuda.allocated_gib == pytest.approx(min(max(0.08 * cuda.allocated_gib, 0.25), 3.0))
    huge = estimate_memory(inputs(method="full"))
    assert huge.reserved_gib - huge.allocated_gib == pytest.approx(3.0)
    cpu = estimate_memory(inputs(capacity_gib=None, context_gib=0.0, precision="fp32"))
    assert cpu.reserved_gib == cpu.allocated_gib
    assert cpu.host_gib >= cpu.allocated_gib


def test_assumptions_say_what_was_taken_for_granted():
    said = " ".join(estimate_memory(inputs()).assumptions)
    for phrase in ("padded to seq_len = 2048", "SDPA", "unfused loss", "AdamW"):
        assert phrase in said


@pytest.mark.parametrize("field, value", [("method", "prefix"), ("attention", "flash2"), ("strategy", "tp")])
def test_unknown_settings_are_named(field, value):
    with pytest.raises(FtcError, match=field):
        estimate_memory(inputs(**{field: value}))


# --- searches ------------------------------------------------------------------------------------


def test_largest_micro_batch_is_the_edge_of_the_budget():
    budget = 60.0
    found = largest_micro_batch(inputs(), budget)
    assert found > 1
    assert estimate_memory(inputs(micro_batch_size=found)).reserved_gib <= budget
    assert estimate_memory(inputs(micro_batch_size=found + 1)).reserved_gib > budget
    assert largest_micro_batch(inputs(), 10.0) == 0  # the bf16 base alone is 15 GiB


def test_longest_seq_len_is_the_edge_of_the_budget_and_the_model():
    budget = 30.0
    found = longest_seq_len(inputs(), budget)
    assert estimate_memory(inputs(seq_len=found)).reserved_gib <= budget
    assert estimate_memory(inputs(seq_len=found + 1)).reserved_gib > budget
    assert longest_seq_len(inputs(), 1000.0) == 8192  # Llama 3's position limit
    assert longest_seq_len(inputs(), 10.0) == 0


# --- every known model, every setting ------------------------------------------------------------


@pytest.mark.parametrize("hub_id", sorted(ARCHITECTURES))
def test_every_known_model_gets_a_finite_estimate(hub_id):
    arch = ARCHITECTURES[hub_id].architecture
    for method, attention, checkpointing in (
        ("full", "eager", False),
        ("lora", "sdpa", True),
        ("qlora", "flash", False),
    ):
        estimate = estimate_memory(
            inputs(
                arch=arch,
                method=method,
                attention=attention,
                gradient_checkpointing=checkpointing,
                quantization_bits=4 if method == "qlora" else None,
            )
        )
        assert 0 < estimate.allocated_gib < 10_000
        assert all(value >= 0 for value in estimate.terms.values())


def test_the_estimate_imports_nothing_heavy():
    heavy = ("torch", "transformers", "peft", "bitsandbytes")
    probe = f"import sys, ftc.compiler.memory.estimate; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
