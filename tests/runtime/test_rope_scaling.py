"""model.rope_scaling: the plan's position limit follows the factor, and the model is built with its rotary
frequencies stretched, through transformers' rope_parameters."""

from __future__ import annotations

import json

import pytest
import torch

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import architecture_from_config
from ftc.errors import FtcError, RuntimeUserError
from ftc.quickstart.tiny import tiny_records
from ftc.runtime.model.rope import rope_scaled_config
from ftc.spec import parse_spec
from ftc.spec.models import ModelSection
from tests.specs import VALID, replace
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

SMALL = {  # a llama small enough that memory never binds: its 512 positions do
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 512,
}


def plan_with(scaling: str | None, cutoff: int = 256, config: dict = SMALL):
    text = replace(VALID, "cutoff_len = 1024", f"cutoff_len = {cutoff}")
    if scaling:
        text = replace(text, 'template = "llama3"', f'template = "llama3"\nrope_scaling = {scaling}')
    spec = parse_spec(text, "job.toml")
    return compile_plan(spec, parse_hardware("1xH100-80GB"), architecture_from_config(config))


def test_the_longest_rows_the_plan_allows_follow_the_factor():
    assert plan_with(None).limits["max_cutoff_len"] == 512
    scaled = plan_with('{ type = "linear", factor = 4 }')
    assert scaled.limits["max_cutoff_len"] == 2048
    assert "RoPE scaling (linear, ×4): rows up to 2048 tokens (the model's: 512)" in scaled.notes


def test_rows_past_the_positions_are_said_with_the_way_out():
    (note,) = [note for note in plan_with(None, cutoff=1024).notes if "positions" in note]
    assert note.startswith("data.cutoff_len = 1024 is past the model's 512 positions: set model.rope_scaling")
    assert not [note for note in plan_with('{ type = "yarn", factor = 2.0 }', cutoff=1024).notes if "past" in note]


def test_a_model_without_a_position_limit_has_nothing_to_scale():
    alibi = {**SMALL, "model_type": "bloom", "n_embed": 256, "n_layer": 2, "n_head": 4}
    alibi = {key: value for key, value in alibi.items() if key != "max_position_embeddings"}
    with pytest.raises(FtcError, match="sets no position limit"):
        plan_with('{ type = "linear", factor = 2.0 }', config=alibi)


@pytest.mark.parametrize("written", ['{ type = "linear", factor = 1.0 }', '{ type = "ntk", factor = 2.0 }'])
def test_a_factor_that_stretches_nothing_or_an_unknown_kind_is_refused(written):
    text = replace(VALID, 'template = "llama3"', f'template = "llama3"\nrope_scaling = {written}')
    with pytest.raises(FtcError) as caught:
        parse_spec(text, "job.toml")
    assert caught.value.diagnostics[0].path.startswith("model.rope_scaling.")


@pytest.mark.parametrize(
    ("kind", "positions", "extra"),
    [
        ("linear", 4096, {}),
        ("dynamic", 2048, {}),  # dynamic NTK reads max_position_embeddings as the trained length
        ("yarn", 4096, {"original_max_position_embeddings": 2048}),
        ("llama3", 4096, {"original_max_position_embeddings": 2048, "low_freq_factor": 1.0, "high_freq_factor": 4.0}),
    ],
)
def test_the_config_carries_each_kind_as_transformers_reads_it(tiny_model_dir, kind, positions, extra):
    from transformers import AutoModelForCausalLM

    model = ModelSection(
        name_or_path=str(tiny_model_dir), template="llama3", rope_scaling={"type": kind, "factor": 2.0}
    )
    config = rope_scaled_config(model)
    assert config.rope_parameters == {"rope_theta": 10000.0, "rope_type": kind, "factor": 2.0, **extra}
    assert config.max_position_embeddings == positions
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).model.rotary_emb.inv_freq
    scaled = AutoModelForCausalLM.from_pretrained(tiny_model_dir, config=config).model.rotary_emb.inv_freq
    if kind == "linear":
        assert torch.allclose(scaled, plain / 2)
    elif kind != "dynamic":  # dynamic changes nothing until rows pass the trained length
        assert not torch.allclose(scaled, plain)


def test_a_model_that_scales_already_or_has_no_rotary_positions_is_refused(tiny_model_dir, tmp_path):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    for name, changed in (
        ("scaled", {**config, "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}}),
        ("learned", {"model_type": "gpt2", "n_embd": 64, "n_layer": 1, "n_head": 2, "vocab_size": 512}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(changed))
        model = ModelSection(
            name_or_path=str(tmp_path / name), template="llama3", rope_scaling={"type": "linear", "factor": 2.0}
        )
        with pytest.raises(RuntimeUserError, match="already|no rotary positions"):
            rope_scaled_config(model)


@pytest.mark.slow
def test_sft_trains_with_stretched_positions_and_saves_them(tmp_path, tiny_model_dir, run_folder, train_in_process):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in tiny_records(64)), encoding="utf-8")
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, data, preset=QUICK, method="full")
    spec["model"]["rope_scaling"] = {"type": "linear", "factor": 2.0}
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    loss = series(metrics, "loss")
    assert loss[-1] < loss[0]
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["rope_parameters"]["rope_type"] == "linear" and saved["max_position_embeddings"] == 4096
