"""The plan counts what the runtime trains: freeze's layer count comes from the spec's [freeze] section."""

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.spec import parse_spec
from tests.specs import VALID, replace


def freeze_plan(layers: int):
    text = replace(VALID, 'method = "lora"', 'method = "freeze"') + f"\n[freeze]\ntrainable_layers = {layers}\n"
    spec = parse_spec(text, "job.toml")
    return compile_plan(spec, parse_hardware("1xH100-80GB"), find_architecture(spec.model.name_or_path))


def test_freeze_memory_follows_the_trained_layer_count():
    two, eight = freeze_plan(2).memory.terms, freeze_plan(8).memory.terms
    # AdamW keeps two fp32 moments per trained weight: four times the layers, four times the moments.
    assert eight["optimizer"] == 4 * two["optimizer"] > 0
    assert eight["gradients"] > two["gradients"]


def test_a_packed_plan_says_how_the_kernel_keeps_examples_apart():
    text = replace(VALID, "cutoff_len = 1024", "cutoff_len = 1024\npacking = true")
    spec = parse_spec(text, "job.toml")
    arch = find_architecture(spec.model.name_or_path)
    sdpa = compile_plan(spec, parse_hardware("1xH100-80GB"), arch)
    assert any("packing" in note and "block-diagonal mask" in note for note in sdpa.notes)
    flash_text = replace(text, 'template = "llama3"', 'template = "llama3"\nattention = "flash"')
    flash = compile_plan(parse_spec(flash_text, "job.toml"), parse_hardware("1xH100-80GB"), arch)
    assert any("variable-length kernel" in note for note in flash.notes)
    assert not any("packing" in note for note in compile_plan(parse_spec(VALID, "j"), parse_hardware("cpu")).notes)


def test_freeze_memory_follows_the_named_modules_and_refuses_a_name_the_model_lacks():
    import pytest

    from ftc.errors import FtcError

    def optimizer_gib(section: str) -> float:
        text = replace(VALID, 'method = "lora"', 'method = "freeze"') + f"\n[freeze]\n{section}\n"
        spec = parse_spec(text, "job.toml")
        plan = compile_plan(spec, parse_hardware("1xH100-80GB"), find_architecture(spec.model.name_or_path))
        return plan.memory.terms["optimizer"]

    whole, mlp = optimizer_gib('trainable_modules = "all"'), optimizer_gib('trainable_modules = ["mlp"]')
    assert mlp / whole == pytest.approx(3 * 14336 / (3 * 14336 + 6144 + 4096 + 2), rel=1e-6)  # Llama-3-8B blocks
    assert optimizer_gib('extra_modules = ["lm_head"]') > whole  # the head's moments join the top layers'
    with pytest.raises(FtcError, match="freeze.trainable_modules names no module called 'ffn'"):
        optimizer_gib('trainable_modules = ["ffn"]')


def oft_plan(section: str, train: str = ""):
    text = replace(VALID, 'method = "lora"', f'method = "oft"\n{train}')
    text = replace(text, '[lora]\nrank = 8\nalpha = 16\ntarget = "all"\n', f"[oft]\n{section}\n")
    spec = parse_spec(text, "job.toml")
    return compile_plan(spec, parse_hardware("1xH100-80GB"), find_architecture(spec.model.name_or_path))


def test_oft_counts_each_blocks_rotation_on_llama_3_8b():
    import pytest

    gib = 1024**3
    plan = oft_plan("block_size = 32")
    # Llama-3-8B's blocks: q, k, v, o, gate and up read 4096 features, down 14336; a layer of width w has w/32
    # blocks of 32·31/2 = 496 stored values, i.e. w·31/2 values; 32 blocks.
    values = 32 * (6 * 4096 + 14336) * 31 // 2
    assert values == 19_300_352
    terms = plan.memory.terms
    assert terms["adapters"] == pytest.approx(values * 4 / gib)  # peft's fp32 adapter
    assert terms["optimizer"] == pytest.approx(2 * values * 4 / gib)  # AdamW's two fp32 moments
    assert any(note.startswith("OFT: 19,300,352 trained values") for note in plan.notes)
    # shared: one rotation per layer, 32·31/2 values for each of the 7 layers of each of the 32 blocks
    shared = oft_plan("block_size = 32\nblock_share = true").memory.terms["adapters"]
    assert shared == pytest.approx(32 * 7 * 496 * 4 / gib)


def test_oft_keeps_its_rotations_block_matrices_for_the_backward():
    import pytest

    fixed = "micro_batch_size = 1\ngradient_checkpointing = false"
    five = oft_plan("block_size = 32\nneumann_terms = 5", fixed).memory.terms["activations"]
    two = oft_plan("block_size = 32\nneumann_terms = 2", fixed).memory.terms["activations"]
    # bf16 autocast over the fp32 rotations: five terms keep 7 bf16 stacks of block matrices per layer (Q cast
    # for each of the 3 products, Q², Q³ and the result), two terms (I + 2Q) only the result's cast. A stack is
    # (w/32)·32² = 32·w values; 32 blocks.
    stack = 32 * (6 * 4096 + 14336)
    assert five - two == pytest.approx(32 * (7 - 1) * stack * 2 / 1024**3)


def test_an_oft_block_size_that_does_not_divide_a_layer_is_refused_at_its_key():
    import pytest

    from ftc.errors import FtcError

    with pytest.raises(FtcError, match=r"^oft.block_size = 48 does not divide the input width 4096 of q_proj") as c:
        oft_plan("block_size = 48")
    assert "e.g. 32" in c.value.hint  # a divisor of 4096 nearest 48 (64 is as near)
    with pytest.raises(FtcError, match=r"^oft.rank = 3 does not divide"):
        oft_plan("rank = 3")
    with pytest.raises(FtcError, match="oft.target names no linear layer called 'wq'"):
        oft_plan('target = ["wq"]')
    # 28 divides down_proj's 14336 but not the 4096 of the others: the layers the target names decide
    assert oft_plan('block_size = 28\ntarget = ["down_proj"]').memory.terms["adapters"] > 0
    with pytest.raises(FtcError, match=r"^oft.block_size = 28 does not divide the input width 4096"):
        oft_plan("block_size = 28")
