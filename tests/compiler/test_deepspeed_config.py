"""deepspeed.json from the plan: every generated config is read back by DeepSpeed's own config parser."""

from __future__ import annotations

import os
import tomllib

import pytest
import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.deepspeed_config import deepspeed_config
from ftc.spec import parse_spec
from tests.specs import VALID

os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's parser, without a GPU to detect
from deepspeed.runtime import config as deepspeed_parser  # noqa: E402

LLAMA_70B = "meta-llama/Meta-Llama-3-70B"


class DataParallel:
    """The one thing DeepSpeed asks a model-parallel unit here: how many data-parallel ranks there are."""

    def __init__(self, world: int) -> None:
        self.world = world

    def get_data_parallel_world_size(self) -> int:
        return self.world


@pytest.fixture
def parse(monkeypatch):
    """DeepSpeedConfig as the engine builds it on rank 0 of the plan's world (no process group here)."""
    monkeypatch.setattr(deepspeed_parser.dist, "get_rank", lambda: 0)

    def parsed(config: dict, world: int):
        return deepspeed_parser.DeepSpeedConfig(config, mpu=DataParallel(world))

    return parsed


def spec_for(model: str = LLAMA_70B, method: str = "full", **train: object):
    raw = tomllib.loads(VALID)
    raw["model"]["name_or_path"] = model
    raw["train"].update(method=method, **train)
    return parse_spec(tomli_w.dumps(raw), "job.toml")


def plan_and_config(spec, hardware: str, nodes: int = 1):
    arch = find_architecture(spec.model.name_or_path)
    plan = compile_plan(spec, parse_hardware(hardware, nodes), arch)
    return plan, deepspeed_config(plan, spec.train, arch.hidden_size)


def test_70b_full_fine_tune_on_two_h100_nodes_is_zero3_and_deepspeed_accepts_it(parse):
    spec = spec_for(global_batch_size=64)
    plan, config = plan_and_config(spec, "8xH100-80GB", nodes=2)
    assert plan.strategy.value == "zero3"
    parsed = parse(config, plan.world_size.value)
    assert parsed.zero_optimization_stage == 3
    assert parsed.train_batch_size == 64 == plan.global_batch_size
    assert parsed.train_micro_batch_size_per_gpu == plan.micro_batch_size.value
    assert parsed.gradient_accumulation_steps == plan.gradient_accumulation_steps.value
    assert parsed.gradient_clipping == spec.train.max_grad_norm
    assert parsed.bfloat16_config.enabled and not parsed.float16_config.enabled
    assert parsed.zero_config.gather_16bit_weights_on_model_save  # the saved model is whole
    assert parsed.zero_config.reduce_bucket_size == 8192 * 8192  # sized to Llama-3-70B's hidden size
    assert "auto" not in str(config)


@pytest.mark.parametrize(
    "strategy, offload, stage",
    [
        ("zero1", "none", 1),
        ("zero2", "none", 2),
        ("zero2", "optimizer", 2),
        ("zero3", "optimizer", 3),
        ("zero3", "optimizer+params", 3),
    ],
)
def test_each_zero_stage_and_offload_parses_as_planned(parse, strategy, offload, stage):
    spec = spec_for("meta-llama/Meta-Llama-3-8B", strategy=strategy, offload=offload)
    plan, config = plan_and_config(spec, "8xA100-80GB")
    parsed = parse(config, 8)
    assert parsed.zero_optimization_stage == stage
    offloads = parsed.zero_config.offload_optimizer, parsed.zero_config.offload_param
    assert [part is not None and part.device == "cpu" for part in offloads] == [
        offload != "none",
        offload == "optimizer+params",
    ]
    if offload != "none":  # ZeRO-Offload steps DeepSpeed's own AdamW on the host, at the spec's rate
        assert parsed.optimizer_name == "adamw"
        assert parsed.optimizer_params["lr"] == spec.train.learning_rate
    else:
        assert parsed.optimizer_name is None  # the trainer's optimizer is used


def test_fp16_gets_dynamic_loss_scaling(parse):
    spec = spec_for("meta-llama/Meta-Llama-3-8B", strategy="zero2")
    plan, config = plan_and_config(spec, "8xV100-32GB")
    assert plan.precision.value == "fp16"
    parsed = parse(config, 8)
    fp16 = parsed.float16_config
    assert fp16.enabled and not parsed.bfloat16_config.enabled
    assert fp16.loss_scale == 0  # dynamic
    assert fp16.initial_scale_power == 16 and fp16.hysteresis == 2


def test_a_batch_shape_that_disagrees_with_the_world_is_refused_by_the_parser(parse):
    """The check above is real: DeepSpeed compares train_batch_size with micro × accumulation × world."""
    plan, config = plan_and_config(spec_for("meta-llama/Meta-Llama-3-8B", strategy="zero2"), "8xA100-80GB")
    with pytest.raises(AssertionError, match="train_batch_size"):
        parse(config, plan.world_size.value * 2)


@pytest.mark.parametrize("strategy, stage", [("zero1", 1), ("zero2", 2), ("zero3", 3)])
def test_a_cpu_plan_steps_the_trainers_optimizer_in_fp32_without_a_second_stream(parse, strategy, stage):
    spec = spec_for("meta-llama/Meta-Llama-3-8B", strategy=strategy)
    plan, config = plan_and_config(spec, "2xcpu")
    assert (plan.backend.value, plan.precision.value, plan.offload.value) == ("cpu", "fp32", "none")
    parsed = parse(config, plan.world_size.value)
    assert parsed.zero_optimization_stage == stage
    assert not parsed.float16_config.enabled and not parsed.bfloat16_config.enabled
    assert parsed.optimizer_name is None  # the trainer's torch AdamW: DeepSpeed's own Adams want CUDA or a build
    assert parsed.zero_config.overlap_comm is False  # DeepSpeed's CPU accelerator has no streams
    assert parsed.zero_config.offload_optimizer is None and parsed.zero_config.offload_param is None
    _, accelerator_config = plan_and_config(spec, "8xA100-80GB")
    assert accelerator_config["zero_optimization"]["overlap_comm"] is True


def test_non_zero_strategies_get_no_deepspeed_config():
    plan, config = plan_and_config(spec_for("meta-llama/Meta-Llama-3-8B", method="lora"), "8xH100-80GB")
    assert plan.strategy.value == "ddp" and config is None


@pytest.mark.parametrize(
    "precision, offload, hardware",
    [
        ("bf16", "none", "8xA100-80GB"),
        ("fp16", "optimizer", "8xA100-80GB"),
        ("bf16", "optimizer+params", "8xA100-80GB"),
        ("fp32", "auto", "2xcpu"),
    ],
)
def test_transformers_finds_nothing_to_correct_against_the_runtimes_training_arguments(
    tmp_path, tiny_model_dir, precision, offload, hardware
):
    """transformers fills a DeepSpeed config from TrainingArguments and lists every value that disagrees."""
    import dataclasses
    import types

    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    from ftc.runs.folder import load_run_folder
    from ftc.runtime.trainer_args import training_arguments
    from ftc.targets.local import LocalTarget
    from ftc.targets.prepare import write_job
    from tests.targets.rendering import make_job

    raw_train = {"strategy": "zero3", "offload": offload, "precision": precision, "method": "full"}
    (tmp_path / "tiny").symlink_to(tiny_model_dir.parent)  # tiny/model: the tiny model's config.json gives its shapes
    train = {**tomllib.loads(VALID)["train"], **raw_train}
    job = make_job(tmp_path, hardware=hardware, local_name="tiny", train=train)
    write_job(LocalTarget(), job, overwrite=False)
    folder = load_run_folder(job.run_dir)
    fields = dataclasses.fields(TrainingArguments)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    world = job.plan.world_size.value
    arguments = types.SimpleNamespace(**{**defaults, **training_arguments(folder), "world_size": world})
    filled = HfTrainerDeepSpeedConfig(arguments.deepspeed)
    filled.trainer_config_process(arguments)
    assert filled.mismatches == []
    assert filled.config["zero_optimization"]["stage"] == 3 and filled.is_zero3()
