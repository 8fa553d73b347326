"""model.adapter: a lora/qlora run trains that adapter further; its adapter_config.json sizes the LoRA terms."""

from __future__ import annotations

import json
import tomllib

import pytest
import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.adapters import adapter_from_config
from ftc.compiler.architectures import architecture_from_config, find_architecture
from ftc.compiler.params import lora_parameters
from ftc.errors import FtcError
from ftc.models.lookup import adapter_for, architecture_for
from ftc.spec import parse_spec
from tests.specs import VALID

GIB = 1024**3
LLAMA3_8B = find_architecture("meta-llama/Meta-Llama-3-8B")


def write_adapter(folder, **config) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    defaults = {"peft_type": "LORA", "r": 64, "lora_alpha": 128, "lora_dropout": 0.05}
    (folder / "adapter_config.json").write_text(json.dumps({**defaults, **config}))


def spec_with(tmp_path, method: str = "lora", adapter: str | None = "earlier/adapter", **model):
    raw = tomllib.loads(VALID)
    raw["train"]["method"] = method
    raw["model"].update(model)
    if adapter is not None:
        raw["model"]["adapter"] = adapter
    return parse_spec(tomli_w.dumps(raw), str(tmp_path / "job.toml"))


def plan_of(spec, tmp_path, hardware: str = "1xH100-80GB"):
    arch = architecture_for(spec, tmp_path)
    return compile_plan(spec, parse_hardware(hardware), arch, adapter=adapter_for(spec, tmp_path))


def test_the_adapter_config_is_read_as_peft_wrote_it():
    shape = adapter_from_config({"r": 16, "lora_alpha": 32, "target_modules": ["v_proj", "q_proj"]}, "runs/a")
    assert (shape.rank, shape.alpha, shape.targets, shape.dropout) == (16, 32.0, ("q_proj", "v_proj"), 0.0)
    assert adapter_from_config({"r": 8, "target_modules": "all-linear"}, "a").targets == "all"
    assert adapter_from_config({"r": 8, "rank_pattern": {"q_proj": 4}}, "a").per_module_ranks
    with pytest.raises(FtcError, match="not a LoRA adapter"):
        adapter_from_config({"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 20}, "a")


def test_a_lora_run_counts_the_adapters_rank_and_targets_not_the_lora_section(tmp_path):
    write_adapter(tmp_path / "earlier" / "adapter", target_modules=["q_proj", "v_proj"])
    spec = spec_with(tmp_path)  # [lora] says rank 8 on every linear layer
    plan = plan_of(spec, tmp_path)
    adapter = lora_parameters(LLAMA3_8B, 64, ("q_proj", "v_proj"))
    assert plan.memory.terms["adapters"] * GIB == pytest.approx(adapter * 4)  # peft's fp32 adapter
    assert adapter != lora_parameters(LLAMA3_8B, 8, "all")
    note = next(note for note in plan.notes if "model.adapter" in note)
    assert "rank 64" in note and "alpha 128" in note and "q_proj, v_proj" in note and "[lora]" in note

    without = compile_plan(spec_with(tmp_path, adapter=None), parse_hardware("1xH100-80GB"), LLAMA3_8B)
    assert without.memory.terms["adapters"] * GIB == pytest.approx(lora_parameters(LLAMA3_8B, 8, "all") * 4)
    assert not any("model.adapter" in note for note in without.notes)


def test_an_adapter_that_is_not_a_local_folder_keeps_the_lora_section_and_says_so(tmp_path):
    spec = spec_with(tmp_path, adapter="someone/their-llama-lora")
    plan = plan_of(spec, tmp_path)
    assert plan.memory.terms["adapters"] * GIB == pytest.approx(lora_parameters(LLAMA3_8B, 8, "all") * 4)
    assert any("was not read" in note and "rank 8" in note for note in plan.notes)


def test_full_and_freeze_merge_the_adapter_and_count_no_adapter(tmp_path):
    write_adapter(tmp_path / "earlier" / "adapter", target_modules=["q_proj"])
    for method in ("full", "freeze"):
        plan = plan_of(spec_with(tmp_path, method=method), tmp_path, hardware="8xH100-80GB")
        assert plan.memory.terms["adapters"] == 0 and not any("model.adapter" in note for note in plan.notes)


def test_targets_outside_the_blocks_are_left_out_and_an_adapter_of_another_model_is_refused(tmp_path):
    write_adapter(tmp_path / "earlier" / "adapter", target_modules=["q_proj", "lm_head"])
    plan = plan_of(spec_with(tmp_path), tmp_path)
    assert plan.memory.terms["adapters"] * GIB == pytest.approx(lora_parameters(LLAMA3_8B, 64, ("q_proj",)) * 4)
    assert any("lm_head not counted" in note for note in plan.notes)
    write_adapter(tmp_path / "other" / "adapter", target_modules=["query_key_value", "dense"])
    with pytest.raises(FtcError, match="model.adapter: .* adapts dense, query_key_value"):
        plan_of(spec_with(tmp_path, adapter="other/adapter"), tmp_path)


def test_the_plan_counts_the_adapter_peft_loads_for_training(tmp_path, tiny_model_dir):
    """A real adapter on the tiny model: the plan's adapter term is the trainable count peft reports."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], task_type="CAUSAL_LM")
    get_peft_model(base, config).save_pretrained(tmp_path / "earlier" / "adapter")
    spec = spec_with(tmp_path, name_or_path=str(tiny_model_dir), template="auto")
    plan = plan_of(spec, tmp_path, hardware="cpu")

    trained = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "earlier" / "adapter", is_trainable=True
    )
    count = sum(parameter.numel() for parameter in trained.parameters() if parameter.requires_grad)
    assert round(plan.memory.terms["adapters"] * GIB / 4) == count  # fp32 adapter on the CPU
    arch = architecture_from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    assert count == lora_parameters(arch, 4, ("down_proj", "q_proj")) != lora_parameters(arch, 8, "all")


def test_ftc_plan_reads_the_adapter_beside_the_spec(tmp_path):
    from tests.commands import ftc

    write_adapter(tmp_path / "earlier" / "adapter", target_modules=["q_proj", "v_proj"])
    raw = tomllib.loads(VALID)
    raw["model"]["adapter"] = "earlier/adapter"
    (tmp_path / "job.toml").write_text(tomli_w.dumps(raw))
    planned = ftc("plan", str(tmp_path / "job.toml"), "-H", "1xH100-80GB", "-f", "json")
    assert planned.returncode == 0, planned.stderr
    as_json = json.loads(planned.stdout)
    adapter = lora_parameters(LLAMA3_8B, 64, ("q_proj", "v_proj"))
    assert as_json["memory"]["terms"]["adapters"] * GIB == pytest.approx(adapter * 4)
    assert any("rank 64" in note for note in as_json["notes"])
