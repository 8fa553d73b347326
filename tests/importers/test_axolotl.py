"""Axolotl configs (LoRA, QLoRA, ORPO, FSDP) imported, validated and planned; the keys left out checked."""

from __future__ import annotations

import json

import pytest

from ftc.errors import FtcError
from tests.importers.helpers import BASE, imported, planned, unmapped_keys

COMMON = f"""\
base_model: {BASE}
model_type: AutoModelForCausalLM
tokenizer_type: AutoTokenizer
chat_template: llama3

sequence_len: 4096
sample_packing: true
pad_to_sequence_len: true

wandb_project: ftc-import
wandb_entity:
wandb_watch:

gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 1
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
tf32: false
gradient_checkpointing: true
flash_attention: true
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
output_dir: ./outputs/out
"""
CHAT_DATA = """\
datasets:
  - path: data/openai_chats.jsonl
    type: chat_template
    field_messages: dialog
dataset_prepared_path: last_run_prepared
val_set_size: 0.05
"""


def test_lora(tmp_path):
    config = (
        f"{COMMON}{CHAT_DATA}adapter: lora\nlora_r: 32\nlora_alpha: 16\nlora_dropout: 0.05\nlora_target_linear: true\n"
    )
    result = imported(tmp_path, "axolotl", config, name="lora.yml")
    spec, plan = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.method, spec.lora.rank, spec.lora.alpha, spec.lora.target) == ("lora", 32, 16.0, "all")
    assert (spec.data.cutoff_len, spec.data.packing, spec.data.eval_ratio) == (4096, True, 0.05)
    assert [(d.format, d.columns) for d in spec.data.datasets] == [("messages", {"messages": "dialog"})]
    assert (spec.train.optimizer, spec.model.attention, spec.model.template) == ("adamw_8bit", "flash", "llama3")
    assert (spec.monitor.report_to, spec.monitor.project) == (["wandb"], "ftc-import")
    assert (spec.train.global_batch_size, spec.train.micro_batch_size) == (8, 2)
    assert plan.fits
    assert set(unmapped_keys(result)) == {
        "model_type",
        "tokenizer_type",
        "pad_to_sequence_len",
        "tf32",
        "evals_per_epoch",
        "saves_per_epoch",
        "dataset_prepared_path",
    }
    assert (tmp_path / "job.toml").read_text().startswith("# Imported from Axolotl: lora.yml\n")


def test_qlora(tmp_path):
    config = (
        f"{COMMON}{CHAT_DATA}adapter: qlora\nload_in_4bit: true\nlora_r: 16\nlora_alpha: 32\n"
        "lora_target_modules:\n  - q_proj\n  - v_proj\n"
    )
    imported(tmp_path, "axolotl", config)
    spec, plan = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.method, spec.quantization.bits, spec.lora.target) == ("qlora", 4, ["q_proj", "v_proj"])
    assert plan.quantization_bits.value == 4


def test_orpo(tmp_path):
    config = f"""{COMMON}adapter: lora\nlora_r: 8\nlora_target_linear: true\nrl: orpo\norpo_alpha: 0.1
datasets:
  - path: data/alpaca_pairs.json
    type: chatml.prompt_pairs
"""
    imported(tmp_path, "axolotl", config.replace("sample_packing: true", "sample_packing: false"))
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.stage, spec.preference.beta) == ("orpo", 0.1)
    assert [(d.format, d.columns) for d in spec.data.datasets] == [("preference", {"instruction": "prompt"})]


def test_fsdp_with_offload(tmp_path):
    config = f"""{COMMON}{CHAT_DATA}fsdp:
  - full_shard
  - auto_wrap
fsdp_config:
  fsdp_offload_params: true
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
"""
    result = imported(
        tmp_path, "axolotl", config.replace("optimizer: adamw_bnb_8bit", "optimizer: adamw_torch"), world_size=8
    )
    spec, plan = planned(tmp_path, "8xA100-80GB")
    assert (spec.train.method, spec.train.strategy, spec.train.offload) == ("full", "fsdp", "optimizer+params")
    assert spec.train.global_batch_size == 2 * 4 * 8 and plan.strategy.value == "fsdp"
    assert unmapped_keys(result)["fsdp_config"] == "ftc writes FSDP's wrapping and state settings itself"


def test_deepspeed_zero3_offload(tmp_path):
    zero = {"stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"}}
    (tmp_path / "zero3_offload.json").write_text(json.dumps({"zero_optimization": zero}))
    config = f"{COMMON}{CHAT_DATA}deepspeed: zero3_offload.json\n".replace("adamw_bnb_8bit", "adamw_torch")
    imported(tmp_path, "axolotl", config, world_size=8)
    spec, plan = planned(tmp_path, "8xA100-80GB")
    assert (plan.strategy.value, plan.offload.value) == ("zero3", "optimizer+params")


def test_a_dataset_type_with_no_equivalent_is_an_error_at_its_line(tmp_path):
    config = f"{COMMON}datasets:\n  - path: x.jsonl\n    type: oasst.custom\n"
    with pytest.raises(FtcError) as caught:
        imported(tmp_path, "axolotl", config)
    line = config.splitlines().index("datasets:") + 1
    assert f"config.yaml:{line}: datasets: " in caught.value.message and "oasst.custom" in caught.value.message
