"""train.kernels in the runtime: the trainer arguments that have transformers patch the model with liger-kernel,
its loss switched on only where the plan chose it, and a missing kernel package said before the model loads."""

from __future__ import annotations

import importlib.util
from dataclasses import replace as changed

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.plan import Decision
from ftc.errors import RuntimeUserError
from ftc.runs.folder import RunFolder
from ftc.runtime.model.loading import require_kernel_packages
from ftc.runtime.trainer_args import training_arguments
from ftc.spec import parse_spec
from tests.specs import VALID, as_dpo, replace

LIGER = ("seed = 42", 'seed = 42\nkernels = ["liger"]')
AS_PT = (('stage = "sft"', 'stage = "pt"'), ('format = "alpaca"', 'format = "text"'))


def folder(tmp_path, text: str) -> RunFolder:
    spec = parse_spec(text, "job.toml")
    plan = compile_plan(spec, parse_hardware("1xH100-80GB"), find_architecture(spec.model.name_or_path))
    return RunFolder(tmp_path, spec, plan)


def edited(*edits: tuple[str, str], text: str = VALID) -> str:
    for old, new in edits:
        text = replace(text, old, new)
    return text


def test_pt_with_liger_has_transformers_apply_its_whole_set_the_loss_included(tmp_path):
    arguments = training_arguments(folder(tmp_path, edited(*AS_PT, LIGER)))
    assert arguments["use_liger_kernel"] is True
    assert arguments["liger_kernel_config"] == {"fused_linear_cross_entropy": True}


@pytest.mark.parametrize(
    "text",
    [
        edited(LIGER),  # sft: trl's fused head
        edited(LIGER, text=as_dpo(VALID)),
        edited(*AS_PT, LIGER, ("seed = 42", 'seed = 42\nloss_head = "model"')),
    ],
)
def test_where_the_plan_keeps_another_loss_only_liger_s_layer_kernels_are_switched_on(tmp_path, text):
    arguments = training_arguments(folder(tmp_path, text))
    assert arguments["use_liger_kernel"] is True
    # trl's SFT, DPO and KTO trainers refuse liger's loss when it is asked for; transformers' Trainer would
    # otherwise replace the model's forward with it.
    assert arguments["liger_kernel_config"] == {"fused_linear_cross_entropy": False}


def test_without_kernels_no_switch_reaches_the_trainer(tmp_path):
    arguments = training_arguments(folder(tmp_path, VALID))
    assert "use_liger_kernel" not in arguments and "liger_kernel_config" not in arguments


def test_the_arguments_are_ones_trl_s_and_transformers_configs_take(tmp_path):
    from transformers import TrainingArguments
    from trl import SFTConfig

    every = training_arguments(folder(tmp_path, edited(*AS_PT, LIGER)))
    arguments = {name: every[name] for name in ("use_liger_kernel", "liger_kernel_config")}
    pt = TrainingArguments(output_dir=str(tmp_path / "pt"), use_cpu=True, **arguments)
    assert pt.use_liger_kernel and pt.liger_kernel_config == {"fused_linear_cross_entropy": True}
    sft = SFTConfig(output_dir=str(tmp_path / "sft"), use_cpu=True, bf16=False, **arguments)
    assert sft.use_liger_kernel


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is not None, reason="liger-kernel is installed here")
def test_a_plan_with_liger_stops_before_loading_the_model_when_the_package_is_missing(tmp_path):
    plan = folder(tmp_path, edited(*AS_PT, LIGER)).plan
    with pytest.raises(RuntimeUserError) as stopped:
        require_kernel_packages(plan)
    assert "liger-kernel" in stopped.value.message and "liger_kernel is not installed here" in stopped.value.message
    assert "ftc[liger]" in stopped.value.hint


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed here")
def test_flash_attention_on_cuda_needs_flash_attn_but_not_on_an_npu(tmp_path):
    plan = folder(tmp_path, VALID).plan
    flash = changed(plan, attention=Decision("flash", "fixed by the test"))
    with pytest.raises(RuntimeUserError, match="flash_attn is not installed here"):
        require_kernel_packages(flash)
    require_kernel_packages(changed(flash, backend=Decision("npu", "fixed by the test")))  # torch_npu's kernel
    require_kernel_packages(plan)  # sdpa: nothing to install
