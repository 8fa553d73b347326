"""fsdp.json from the plan: its keys, the decoder-layer class each family wraps, and the real wrapped model."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.fsdp_config import fsdp_config
from ftc.compiler.model_families import FAMILIES
from ftc.spec import parse_spec
from tests.specs import VALID

# Families whose code is not in transformers (their own modeling file names the class).
REMOTE_CODE = {"internlm2", "chatglm", "baichuan"}
ROOT = Path(__file__).resolve().parents[2]


def spec_for(model: str = "meta-llama/Meta-Llama-3-70B", method: str = "full", **train: object):
    raw = tomllib.loads(VALID)
    raw["model"]["name_or_path"] = model
    raw["train"].update(method=method, **train)
    return parse_spec(tomli_w.dumps(raw), "job.toml")


def test_70b_full_fsdp_on_two_h100_nodes_shards_each_llama_layer_and_saves_one_model():
    spec = spec_for(strategy="fsdp")
    arch = find_architecture(spec.model.name_or_path)
    plan = compile_plan(spec, parse_hardware("8xH100-80GB", nodes=2), arch)
    config = fsdp_config(plan, arch.model_type)
    assert config["version"] == 2 and config["reshard_after_forward"] is True
    assert config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert config["activation_checkpointing"] == plan.gradient_checkpointing.value
    assert config["cpu_offload"] == (plan.offload.value != "none")
    assert config["mixed_precision"] == "bf16"
    assert config["state_dict_type"] == "FULL_STATE_DICT"  # export gathers one safetensors model
    assert config["cpu_ram_efficient_loading"] is True


def test_other_strategies_get_no_fsdp_config():
    spec = spec_for(method="lora")
    plan = compile_plan(spec, parse_hardware("8xH100-80GB"), find_architecture(spec.model.name_or_path))
    assert plan.strategy.value != "fsdp" and fsdp_config(plan, "llama") is None


def test_an_unknown_model_type_leaves_the_wrap_classes_to_transformers():
    spec = spec_for(strategy="fsdp")
    plan = compile_plan(spec, parse_hardware("8xH100-80GB", nodes=2), find_architecture(spec.model.name_or_path))
    assert "transformer_layer_cls_to_wrap" not in fsdp_config(plan, "somebrandnewtype")


@pytest.mark.parametrize("model_type", sorted(set(FAMILIES) - REMOTE_CODE - {"yi"}))
def test_each_wrapped_class_exists_in_transformers(model_type):
    # LLaVA's language model is transformers' llama, whose module defines the block LLaVA's FSDP wraps;
    # Gemma 3's text-only model shares the image+text model's module
    source = {"llava": "llama", "gemma3_text": "gemma3"}.get(model_type, model_type)
    modeling = importlib.import_module(f"transformers.models.{source}.modeling_{source}")
    assert hasattr(modeling, FAMILIES[model_type].decoder_layer)


def test_every_family_has_fsdp_wrap_its_own_decoder_layer():
    spec = spec_for(strategy="fsdp")
    plan = compile_plan(spec, parse_hardware("8xH100-80GB", nodes=2), find_architecture(spec.model.name_or_path))
    for model_type, family in FAMILIES.items():
        assert fsdp_config(plan, model_type)["transformer_layer_cls_to_wrap"] == [family.decoder_layer]


@pytest.mark.slow
def test_the_generated_config_wraps_the_real_model_on_the_cpu(tmp_path, tiny_model_dir):
    spec = spec_for(str(tiny_model_dir), method="lora", strategy="fsdp", precision="bf16", gradient_checkpointing=True)
    plan = compile_plan(spec, parse_hardware("2xcpu"))
    config_path = tmp_path / "fsdp.json"
    config_path.write_text(json.dumps(fsdp_config(plan, "llama")), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "tests.compiler.fsdp_wrapping", str(tiny_model_dir), str(config_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    wrapped = json.loads(result.stdout.strip().splitlines()[-1])
    assert wrapped["root_sharded"] and wrapped["layers_sharded"] == [True, True]  # the tiny model's 2 layers
    assert wrapped["runtime_check"] is None  # the runtime's plan check sees the same units
    assert wrapped["all_parameters_dtensors"]
    assert wrapped["checkpointed_layers"] == 2  # activation_checkpointing = the plan's gradient_checkpointing
    assert wrapped["param_dtype"] == "torch.bfloat16"
    assert not wrapped["offload"]  # (pinned host memory for offload needs an accelerator)
    assert wrapped["state_dict_type"].endswith("FULL_STATE_DICT")
