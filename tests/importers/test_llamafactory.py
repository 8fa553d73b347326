"""LLaMA-Factory configs of every stage it has, imported, validated and planned; the keys left out checked."""

from __future__ import annotations

import json

import pytest

from ftc.errors import FtcError
from tests.importers.helpers import BASE, imported, planned, unmapped_keys

MODEL = f"""\
### model
model_name_or_path: {BASE}
trust_remote_code: true
"""
OUTPUT = """\
### output
output_dir: saves/llama3-8b/run
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
report_to: tensorboard

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
"""


def lf(method: str, dataset: str, extra: str = "") -> str:
    data = f"### dataset\ndataset: {dataset}\ntemplate: llama3\ncutoff_len: 2048\n"
    return f"{MODEL}\n### method\n{method}\n{data}{extra}\n{OUTPUT}"


LORA = "finetuning_type: lora\nlora_rank: 8\nlora_target: all\n"


def test_sft_lora_maps_every_key_and_plans(tmp_path):
    result = imported(tmp_path, "llamafactory", lf(f"stage: sft\ndo_train: true\n{LORA}", "hello_alpaca,talks"))
    spec, plan = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.stage, spec.train.method, spec.lora.rank, spec.lora.target) == ("sft", "lora", 8, "all")
    assert (spec.model.template, spec.model.trust_remote_code, spec.data.cutoff_len) == ("llama3", True, 2048)
    assert (spec.train.learning_rate, spec.train.epochs, spec.train.warmup_ratio) == (1e-4, 3.0, 0.1)
    assert (spec.train.global_batch_size, spec.train.micro_batch_size, spec.train.precision) == (8, 1, "bf16")
    assert spec.monitor.report_to == ["tensorboard"] and spec.output.dir.endswith("saves/llama3-8b/run")
    assert [(d.format, d.columns) for d in spec.data.datasets] == [
        ("alpaca", {"instruction": "ask", "input": "detail", "output": "reply", "system": "sys", "history": "past"}),
        ("sharegpt", {"conversations": "turns", "tools": "functions", "system": "sys"}),
    ]
    assert plan.world_size.value == 1 and plan.micro_batch_size.value * plan.gradient_accumulation_steps.value == 8
    assert unmapped_keys(result) == {
        "do_train": "every ftc run trains",
        "plot_loss": "ftc's report always plots the loss (ftc report)",
        "overwrite_output_dir": "ftc launch refuses a used run folder; pick a new output.dir",
        "ddp_timeout": "above ftc's longest collective timeout (86400 s); its default applies",
    }
    text = (tmp_path / "job.toml").read_text()
    assert text.startswith("# Imported from LLaMA-Factory: config.yaml\n# source sha256: ")
    assert result.job.source.sha256 in text and "# do_train: True  -- every ftc run trains" in text


def test_world_size_multiplies_the_global_batch_and_says_so(tmp_path):
    result = imported(tmp_path, "llamafactory", lf(f"stage: sft\n{LORA}", "hello_alpaca"), world_size=8)
    spec, plan = planned(tmp_path, "8xA100-80GB")
    assert spec.train.global_batch_size == 1 * 8 * 8
    assert any("× 8 processes (--world-size 8)" in note for note in result.job.notes)
    assert plan.world_size.value == 8 and plan.micro_batch_size.value * plan.gradient_accumulation_steps.value * 8 == 64


def test_pt_reads_the_prompt_column_as_text(tmp_path):
    imported(tmp_path, "llamafactory", lf("stage: pt\nfinetuning_type: lora\npacking: true", "notes_text"))
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert spec.train.stage == "pt" and spec.data.packing
    assert [(d.format, d.columns) for d in spec.data.datasets] == [("text", {"text": "body"})]


@pytest.mark.parametrize(
    ("stage_keys", "dataset", "stage", "loss"),
    [
        ("stage: rm", "pairs", "rm", "sigmoid"),
        ("stage: dpo\npref_beta: 0.2\npref_loss: sigmoid", "pairs,alpaca_pairs", "dpo", "sigmoid"),
        ("stage: dpo\npref_loss: orpo\npref_beta: 0.1", "pairs", "orpo", "sigmoid"),
        ("stage: dpo\npref_loss: simpo\nsimpo_gamma: 0.7", "alpaca_pairs", "cpo", "simpo"),
    ],
)
def test_preference_stages(tmp_path, stage_keys, dataset, stage, loss):
    imported(tmp_path, "llamafactory", lf(f"{stage_keys}\n{LORA}", dataset))
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.stage, spec.preference.loss_type) == (stage, loss)
    assert spec.data.datasets[0].format == "preference"
    if dataset.startswith("pairs"):
        assert spec.data.datasets[0].columns == {"messages": "conversations", "chosen": "better", "rejected": "worse"}
    if stage == "cpo":
        assert spec.preference.simpo_gamma == 0.7


def test_kto_reads_the_label_column(tmp_path):
    config = lf(f"stage: kto\n{LORA}kto_chosen_weight: 1.5\nkto_rejected_weight: 0.8\npref_beta: 0.1", "verdicts")
    result = imported(tmp_path, "llamafactory", config)
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.stage, spec.preference.desirable_weight, spec.preference.undesirable_weight) == ("kto", 1.5, 0.8)
    assert [(d.format, d.columns) for d in spec.data.datasets] == [("kto", {"label": "thumbs_up"})]
    assert spec.train.micro_batch_size is None  # kto needs 2 or more a micro-batch: left to the plan
    assert any("per_device_train_batch_size = 1 is left to the plan" in note for note in result.job.notes)


def test_ppo_with_a_reward_model(tmp_path):
    config = lf(
        f"stage: ppo\n{LORA}reward_model: saves/llama3-8b/rm\nreward_model_type: full\nppo_epochs: 2\n"
        "max_new_tokens: 128\ntop_k: 0\ntop_p: 0.9\nppo_score_norm: false",
        "hello_alpaca",
    )
    result = imported(tmp_path, "llamafactory", config)
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.stage, spec.ppo.ppo_epochs, spec.ppo.max_new_tokens) == ("ppo", 2, 128)
    assert spec.ppo.reward_model.endswith("saves/llama3-8b/rm")
    assert {"reward_model_type", "top_k", "top_p", "ppo_score_norm"} <= set(unmapped_keys(result))


def test_qlora_with_its_quantization_keys(tmp_path):
    config = lf(
        f"stage: sft\n{LORA}quantization_bit: 4\nquantization_method: bnb\ndouble_quantization: true", "hello_alpaca"
    )
    result = imported(tmp_path, "llamafactory", config)
    spec, plan = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.method, spec.quantization.bits, spec.quantization.backend) == ("qlora", 4, "bitsandbytes")
    assert plan.quantization_bits.value == 4
    assert "double_quantization" in unmapped_keys(result)


@pytest.mark.parametrize(
    ("ds_config", "strategy", "offload"),
    [
        ({"zero_optimization": {"stage": 2}}, "zero2", "none"),
        ({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}, "zero2", "optimizer"),
        (
            {
                "zero_optimization": {
                    "stage": 3,
                    "offload_optimizer": {"device": "cpu"},
                    "offload_param": {"device": "cpu"},
                }
            },
            "zero3",
            "optimizer+params",
        ),
    ],
)
def test_deepspeed_json_is_read_into_strategy_and_offload(tmp_path, ds_config, strategy, offload):
    (tmp_path / "ds_config.json").write_text(json.dumps({"train_batch_size": "auto", **ds_config}))
    imported(
        tmp_path,
        "llamafactory",
        lf("stage: sft\nfinetuning_type: full\ndeepspeed: ds_config.json", "talks"),
        world_size=8,
    )
    spec, plan = planned(tmp_path, "8xA100-80GB")
    assert (spec.train.strategy, spec.train.offload) == (strategy, offload)
    assert (plan.strategy.value, plan.offload.value) == (strategy, offload)


def test_fsdp(tmp_path):
    result = imported(
        tmp_path,
        "llamafactory",
        lf("stage: sft\nfinetuning_type: full\nfsdp: full_shard auto_wrap\nfsdp_config: {}", "talks"),
        world_size=8,
    )
    spec, plan = planned(tmp_path, "8xA100-80GB")
    assert spec.train.strategy == "fsdp" and plan.strategy.value == "fsdp"
    assert "fsdp_config" in unmapped_keys(result)


def test_the_newer_keys(tmp_path):
    config = lf(
        "stage: sft\nfinetuning_type: full\nuse_galore: true\ngalore_rank: 64\ngalore_target: all\n"
        "galore_update_interval: 100\ngalore_scale: 0.5\nenable_liger_kernel: true\nneftune_noise_alpha: 5\n"
        "rope_scaling: linear\nflash_attn: sdpa\nshift_attn: false\nuse_unsloth: true",
        "hello_alpaca",
    )
    result = imported(tmp_path, "llamafactory", config)
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert (spec.train.optimizer, spec.galore.rank, spec.galore.update_proj_gap, spec.galore.scale) == (
        "galore_adamw",
        64,
        100,
        0.5,
    )
    assert (spec.train.kernels, spec.train.neftune_alpha, spec.model.attention) == (["liger"], 5.0, "sdpa")
    assert (spec.model.rope_scaling.type, spec.model.rope_scaling.factor) == ("linear", 2.0)
    assert "use_unsloth" in unmapped_keys(result)


@pytest.mark.parametrize(
    ("keys", "check"),
    [
        (
            "finetuning_type: oft\noft_rank: 0\noft_block_size: 32",
            lambda s: (s.train.method, s.oft.block_size) == ("oft", 32),
        ),
        ("finetuning_type: freeze\nfreeze_trainable_layers: 2", lambda s: s.freeze.trainable_layers == 2),
        (
            "finetuning_type: freeze\nuse_llama_pro: true\nfreeze_trainable_layers: 8",
            lambda s: s.llama_pro.added_layers == 8,
        ),
        (
            "finetuning_type: full\nuse_badam: true\nbadam_mode: layer\nbadam_switch_interval: 20",
            lambda s: (s.train.optimizer, s.badam.switch_every) == ("badam", 20),
        ),
        (
            "finetuning_type: full\nuse_apollo: true\napollo_rank: 128",
            lambda s: (s.train.optimizer, s.apollo.rank) == ("apollo_adamw", 128),
        ),
        ("finetuning_type: full\nuse_adam_mini: true", lambda s: s.train.optimizer == "adam_mini"),
        ("finetuning_type: full\nuse_muon: true", lambda s: s.train.optimizer == "muon"),
        ("finetuning_type: lora\nshift_attn: true", lambda s: s.train.shift_attention),
        (
            "finetuning_type: lora\nquantization_bit: 4\nquantization_method: hqq",
            lambda s: s.quantization.backend == "hqq",
        ),
    ],
)
def test_methods_and_optimizers(tmp_path, keys, check):
    imported(tmp_path, "llamafactory", lf(f"stage: sft\n{keys}", "hello_alpaca"))
    spec, _ = planned(tmp_path, "1xA100-80GB")
    assert check(spec)


@pytest.mark.parametrize(
    ("line", "key", "says"),
    [
        ("stage: grpo", "stage", "stage 'grpo' has no equivalent"),
        ("lr_scheduler_type: polynomial", "lr_scheduler_type", "has no equivalent"),
        ("quantization_bit: 5", "quantization_bit", "5 bits"),
        ("flash_attn: fa3", "flash_attn", "fa3"),
        ("learning_rate: fast", "learning_rate", "expected a number"),
        ("report_to: swanlab", "report_to", "swanlab"),
        ("dataset: nowhere", "dataset", "no dataset named 'nowhere'"),
    ],
)
def test_a_value_that_cannot_be_mapped_is_an_error_at_its_line(tmp_path, line, key, says):
    config = f"{MODEL}stage: sft\nfinetuning_type: lora\ndataset: hello_alpaca\n{line}\nnum_train_epochs: 1\n"
    lines = config.splitlines()
    at = max(number for number, text in enumerate(lines, 1) if text == line)
    with pytest.raises(FtcError) as caught:
        imported(tmp_path, "llamafactory", config)
    assert f"config.yaml:{at}: {key}: " in caught.value.message and says in caught.value.message


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("- just\n- a list\n", "expected a mapping"),
        ("key: [unclosed\n", "not valid YAML"),
        ("", "expected a mapping"),
        ("a: 1\n\tb: 2\n", "not valid YAML"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_a_strange_file_is_a_message_not_a_traceback(tmp_path, content, says):
    with pytest.raises(FtcError) as caught:
        imported(tmp_path, "llamafactory", content)
    assert says in caught.value.message


def test_a_missing_dataset_info_names_the_option(tmp_path):
    (tmp_path / "config.yaml").write_text(f"{MODEL}stage: sft\ndataset: alpaca_en_demo\ndataset_dir: elsewhere\n")
    from ftc.importers import import_config

    with pytest.raises(FtcError) as caught:
        import_config("llamafactory", tmp_path / "config.yaml", tmp_path / "job.toml")
    assert "config.yaml:" in caught.value.message and caught.value.hint == "pass --dataset-info FILE"
