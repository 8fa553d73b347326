"""train.shift_attention in the plan, on Llama-3-8B's published shapes (32 layers, 32 query heads of 128, 8
key-value heads) at 8192-token rows with its positions stretched ×2: groups of 2048 tokens shrink each layer's
mask bias and the attention's FLOPs, and nothing else."""

from __future__ import annotations

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.timing import flops_per_token
from ftc.spec import parse_spec
from tests.specs import VALID, replace

GIB = 1024**3
LAYERS, Q_WIDTH, CUTOFF, GROUP, BF16 = 32, 32 * 128, 8192, 2048, 2


def llama3_8b_plan(
    shift: bool, micro: int = 1, checkpointing: bool = False, strategy: str = "single", hardware: str = "1xH200"
):
    text = replace(VALID, "cutoff_len = 1024", f"cutoff_len = {CUTOFF}")
    text = replace(text, 'template = "llama3"', 'template = "llama3"\nrope_scaling = { type = "linear", factor = 2.0 }')
    settings = f"micro_batch_size = {micro}\ngradient_checkpointing = {str(checkpointing).lower()}"
    settings += f'\nstrategy = "{strategy}"' + ("\nshift_attention = true" if shift else "")
    spec = parse_spec(replace(text, "seed = 42", f"seed = 42\n{settings}"), "job.toml")
    return compile_plan(spec, parse_hardware(hardware), find_architecture(spec.model.name_or_path))


def activations_saved(**settings) -> float:
    """Bytes of activations the grouped run keeps fewer than the same run attending whole rows."""
    full, shifted = llama3_8b_plan(False, **settings), llama3_8b_plan(True, **settings)
    others = {term: gib for term, gib in full.memory.terms.items() if term != "activations"}
    assert others == {term: gib for term, gib in shifted.memory.terms.items() if term != "activations"}
    return (full.memory.terms["activations"] - shifted.memory.terms["activations"]) * GIB


def test_each_layer_keeps_a_mask_bias_of_two_layouts_of_groups_not_the_whole_square():
    # One row: SDPA keeps a bf16 bias of seq² per layer; grouped, one of seq × group for each half of the heads.
    whole = LAYERS * CUTOFF * CUTOFF * BF16  # 4 GiB
    grouped = LAYERS * CUTOFF * 2 * GROUP * BF16  # 2 GiB
    assert activations_saved() == whole - grouped == 2 * GIB


def test_an_o_proj_that_reads_the_attentions_output_keeps_the_copy_out_of_the_groups():
    # Under ZeRO the LoRA adapter is bf16, so o_proj's adapter keeps the attention's output itself: grouped, that
    # is a copy back into the row, q_width bf16 values a token, which here (4096 = 8192 - 2 × 2048) is exactly
    # what the smaller bias saves.
    copied_back = LAYERS * CUTOFF * Q_WIDTH * BF16
    assert activations_saved(strategy="zero2") == 2 * GIB - copied_back == 0


def test_under_checkpointing_only_the_recomputed_layer_keeps_its_bias():
    saved = activations_saved(micro=8, checkpointing=True, hardware="1xH100-80GB")
    assert saved == 8 * (CUTOFF * CUTOFF - CUTOFF * 2 * GROUP) * BF16  # one layer, eight rows: 0.5 GiB


def test_the_attention_flops_follow_the_group_and_the_plan_says_so():
    arch = find_architecture("meta-llama/Meta-Llama-3-8B-Instruct")
    # causal attention per token and layer: 2 · keys reached · q width (scores and mix, half the square)
    attention_saved = 2 * LAYERS * (CUTOFF - GROUP) * Q_WIDTH  # 1.61 GFLOPs a token of each forward
    for checkpointing, forwards in ((False, 2), (True, 3)):  # LoRA: forward, its backward (one more), a recompute
        full = flops_per_token(arch, "lora", CUTOFF, checkpointing)
        shifted = flops_per_token(arch, "lora", CUTOFF, checkpointing, GROUP)
        assert full - shifted == forwards * attention_saved
    full, shifted = llama3_8b_plan(False), llama3_8b_plan(True)
    rate = full.time.tokens_per_second * flops_per_token(arch, "lora", CUTOFF, False)
    assert (
        abs(shifted.time.tokens_per_second * flops_per_token(arch, "lora", CUTOFF, False, GROUP) - rate) < 1e-3 * rate
    )
    assert shifted.time.tokens_per_second > full.time.tokens_per_second
    (note,) = [note for note in shifted.notes if note.startswith("shifted sparse attention")]
    assert "groups of 2048 tokens (4 per 8192-token row)" in note and "grouped 1024 tokens further on" in note
    assert "RoPE scaling (linear, ×2): rows up to 16384 tokens (the model's: 8192)" in shifted.notes
    assert not [note for note in full.notes if note.startswith("shifted sparse attention")]
