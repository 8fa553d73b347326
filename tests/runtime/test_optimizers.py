"""Each train.optimizer trains the tiny model on the CPU through its library: the loss falls, and the weights that
changed are the ones the optimizer says it steps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ftc.compiler.plan import Decision
from ftc.quickstart.tiny import tiny_records
from ftc.runtime.optimizers import ALL_DECODER_LINEARS, trainer_arguments
from ftc.spec.models import Spec
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

# Full fine-tuning at AdamW's usual small-model rate; each optimizer's own settings go in its section.
FULL = {**QUICK, "method": "full", "learning_rate": 2e-3, "max_steps": 12}
SMALL_RANK = {"rank": 8, "update_proj_gap": 4}


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in tiny_records(64)), encoding="utf-8")
    return data


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def _train(tmp_path, tiny_model_dir, run_folder, train_in_process, optimizer, sections=None, **train):
    # Layer-wise stepping takes the global batch in one micro-batch, as its plan does.
    layerwise = any(section.get("layerwise") for section in (sections or {}).values())
    spec = tiny_spec(
        tmp_path / "run", tiny_model_dir, _data(tmp_path), preset=FULL, sections=sections, optimizer=optimizer, **train
    )
    spec["lora"] = {}  # full fine-tuning: no adapter settings
    Spec.model_validate(spec)
    plan = cpu_plan()
    if layerwise:
        plan = replace(plan, micro_batch_size=Decision(8, "test"), gradient_accumulation_steps=Decision(1, "test"))
    metrics = train_in_process(run_folder(spec, plan))
    before, after = _weights(tiny_model_dir), _weights(tmp_path / "run" / "model")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    return series(metrics, "loss"), changed, before, after


@pytest.mark.slow
@pytest.mark.parametrize(
    ("optimizer", "sections"),
    [
        ("galore_adamw", {"galore": SMALL_RANK}),
        ("galore_adamw", {"galore": {**SMALL_RANK, "layerwise": True}}),
        ("apollo_adamw", {"apollo": SMALL_RANK}),
        ("adam_mini", None),
        ("muon", None),
    ],
)
def test_every_weight_trains_and_the_loss_falls(
    tmp_path, tiny_model_dir, run_folder, train_in_process, optimizer, sections
):
    loss, changed, before, _ = _train(tmp_path, tiny_model_dir, run_folder, train_in_process, optimizer, sections)
    assert loss[-1] < loss[0] - 0.5, loss
    assert changed == set(before)  # the projected matrices, and the rest through AdamW


@pytest.mark.slow
def test_badam_trains_only_its_active_block(tmp_path, tiny_model_dir, run_folder, train_in_process):
    sections = {"badam": {"switch_mode": "fixed", "start_block": 1}}
    loss, changed, before, _ = _train(tmp_path, tiny_model_dir, run_folder, train_in_process, "badam", sections)
    assert loss[-1] < loss[0], loss
    assert changed == {name for name in before if name.startswith("model.layers.1.")}


@pytest.mark.slow
def test_badam_switches_blocks_every_n_steps(tmp_path, tiny_model_dir, run_folder, train_in_process):
    sections = {"badam": {"switch_every": 6, "switch_mode": "ascending"}}
    loss, changed, before, _ = _train(tmp_path, tiny_model_dir, run_folder, train_in_process, "badam", sections)
    assert loss[-1] < loss[0], loss
    # 12 steps, 6 per block: both blocks trained; the embeddings, the head and the final norm never do
    assert changed == {name for name in before if name.startswith("model.layers.")}


def test_galore_reaches_transformers_by_name_with_its_settings(tmp_path):
    spec = _spec_with("galore_adamw_8bit", {"galore": {"rank": 16, "target": ["q_proj", "v_proj"], "layerwise": True}})
    arguments = trainer_arguments(spec)
    assert arguments == {
        "optim": "galore_adamw_8bit_layerwise",
        "optim_target_modules": ["q_proj", "v_proj"],
        "optim_args": "rank=16,update_proj_gap=200,scale=0.25,proj_type=std",
    }


def test_all_targets_are_the_decoder_linears_not_the_head():
    import re

    spec = _spec_with("apollo_adamw", {"apollo": {"rank": 1, "scale_type": "tensor", "scale": 128.0}})
    arguments = trainer_arguments(spec)
    assert arguments["optim"] == "apollo_adamw"
    assert arguments["optim_args"] == "rank=1,update_proj_gap=200,scale=128.0,proj=random,scale_type=tensor"
    pattern = arguments["optim_target_modules"]
    assert pattern == ALL_DECODER_LINEARS
    assert re.fullmatch(pattern, "model.layers.11.self_attn.q_proj")
    assert not re.fullmatch(pattern, "lm_head") and not re.fullmatch(pattern, "model.embed_tokens")


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, TrainingArguments

    from ftc.runtime.optimizers import attach_optimizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    class Trainer:  # what attach_optimizer reads of a trainer
        args = TrainingArguments(str(tmp_path), learning_rate=1e-3, weight_decay=0.01, report_to=[])
        optimizer = None

    Trainer.model = model
    attach_optimizer(Trainer, _spec_with("muon", {"muon": {"momentum": 0.9}}))
    muon, adamw = Trainer.optimizer.parts["muon"], Trainer.optimizer.parts["adamw"]
    names = {id(p): name for name, p in model.named_parameters()}
    hidden = {names[id(p)] for group in muon.param_groups for p in group["params"]}
    rest = {names[id(p)] for group in adamw.param_groups for p in group["params"]}
    assert hidden == {name for name, p in model.named_parameters() if name.startswith("model.layers.") and p.ndim == 2}
    assert rest == set(names.values()) - hidden  # embeddings, head and norms
    assert muon.param_groups[0]["momentum"] == 0.9 and muon.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"
    # one optimizer to the trainer: the scheduler's learning rate reaches both parts
    for group in Trainer.optimizer.param_groups:
        group["lr"] = 0.5
    assert muon.param_groups[0]["lr"] == adamw.param_groups[0]["lr"] == 0.5
    state = Trainer.optimizer.state_dict()
    Trainer.optimizer.load_state_dict(state)
    assert set(state["parts"]) == {"muon", "adamw"}


def _spec_with(optimizer: str, sections: dict) -> Spec:
    spec = tiny_spec(Path("run"), Path("model"), Path("data.jsonl"), method="full", optimizer=optimizer)
    spec["lora"] = {}
    return Spec.model_validate({**spec, **sections})


def test_badam_holds_the_model_in_the_compute_dtype_as_the_plan_counts(tiny_model_dir):
    from ftc.compiler.memory.states import holding
    from ftc.runtime.model.loading import load_model
    from ftc.runtime.plan_check import trainable_dtype_mismatch
    from ftc.spec.sections.model import ModelSection

    section, plan = ModelSection(name_or_path=str(tiny_model_dir)), cpu_plan("bf16")
    model = load_model(section, plan, "full", "badam")
    assert model.dtype == torch.bfloat16  # BAdam's fp32 copy is its own, one block at a time
    assert holding("full", "bf16", "single", "sft", "badam").trainable == 2
    assert trainable_dtype_mismatch(model, plan, "full", "sft", "badam") is None
    assert trainable_dtype_mismatch(model, plan, "full", "sft", "adamw") is not None  # AdamW's plan wants fp32


@pytest.mark.slow
def test_pure_bf16_full_fine_tuning_trains_bf16_weights(tmp_path, tiny_model_dir, run_folder, train_in_process):
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, _data(tmp_path), preset=FULL, precision="bf16", pure_bf16=True)
    spec["lora"] = {}
    metrics = train_in_process(run_folder(spec, cpu_plan("bf16")))
    loss = series(metrics, "loss")
    assert loss[-1] < loss[0] - 0.5, loss
    before, after = _weights(tiny_model_dir), _weights(tmp_path / "run" / "model")
    assert {name for name in before if not torch.equal(before[name], after[name])} == set(before)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "model" / "model.safetensors"), "pt") as saved:
        assert {saved.get_tensor(name).dtype for name in saved.keys()} == {torch.bfloat16}  # no fp32 copy was kept
