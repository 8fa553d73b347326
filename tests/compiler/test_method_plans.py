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
