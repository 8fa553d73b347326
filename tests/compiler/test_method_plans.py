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
