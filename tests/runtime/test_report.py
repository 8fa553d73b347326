"""metrics.json bookkeeping, the curves and summary drawn from it, and the trainer settings taken from spec and plan."""

from __future__ import annotations

import json

import pytest

from ftc.errors import RuntimeUserError
from ftc.runs.folder import RunFolder
from ftc.runs.metrics import add_trainer_log, new_metrics, read_metrics, series_values, write_metrics
from ftc.runs.report import sparkline, summary_lines, write_plots
from ftc.runtime.trainer_args import monitor_environment, training_arguments, warmup_fraction
from ftc.spec.models import Spec
from tests.tiny_runs import cpu_plan


def test_sparkline_runs_from_high_to_low():
    assert sparkline([4.0, 3.0, 2.0, 1.0]) == "█▆▃▁"
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert len(sparkline([float(i) for i in range(500)], width=40)) == 40
    assert sparkline([]) == ""


def test_metrics_keep_losses_and_runtime(tmp_path):
    metrics = new_metrics("sft", "lora")
    add_trainer_log(metrics, 1, {"loss": 6.5, "learning_rate": 0.0, "epoch": 0.03, "grad_norm": 1.0})
    add_trainer_log(metrics, 5, {"loss": 5.0, "learning_rate": 1e-3, "epoch": 0.15})
    add_trainer_log(metrics, 5, {"train_runtime": 2.5, "train_loss": 5.5})
    write_metrics(tmp_path / "metrics.json", metrics)

    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["log"] == [
        {"step": 1, "loss": 6.5, "learning_rate": 0.0, "epoch": 0.03},
        {"step": 5, "loss": 5.0, "learning_rate": 1e-3, "epoch": 0.15},
    ]
    assert (written["first_loss"], written["last_loss"], written["train_runtime_s"]) == (6.5, 5.0, 2.5)
    assert list(tmp_path.iterdir()) == [tmp_path / "metrics.json"]  # no temporary file left behind
    plots = write_plots(written, tmp_path, "sft · lora · run")
    assert plots == [tmp_path / "loss.png"]  # an SFT run has no reward curves to draw
    lines = summary_lines(written, tmp_path / "adapter", plots)
    assert lines[0].startswith("loss 6.500 → 5.000") and f"adapter: {tmp_path / 'adapter'}" in lines
    assert lines[-1] == f"curves: loss.png in {tmp_path}"


def dpo_like_metrics() -> dict:
    metrics = new_metrics("dpo", "lora")
    for step, margin in ((1, 0.0), (2, 0.4), (3, 1.5)):
        logs = {"loss": 0.7 - margin / 3, "rewards/chosen": margin / 2, "rewards/rejected": -margin / 2}
        add_trainer_log(metrics, step, {**logs, "rewards/margins": margin, "rewards/accuracies": min(margin, 1.0)})
    add_trainer_log(metrics, 3, {"eval_loss": 0.31, "eval_rewards/margins": 1.2})
    return metrics


def test_a_stages_reward_series_are_kept_under_one_name_whatever_the_trainer_calls_them():
    metrics = dpo_like_metrics()
    assert series_values(metrics, "reward_margin") == [(1, 0.0), (2, 0.4), (3, 1.5)]
    assert series_values(metrics, "reward_accuracy") == [(1, 0.0), (2, 0.4), (3, 1.0)]
    assert series_values(metrics, "reward_chosen")[-1] == (3, 0.75)
    # an evaluation's series are kept beside its loss, by the same names with eval_ before them
    assert metrics["eval_log"] == [{"step": 3, "eval_loss": 0.31, "eval_reward_margin": 1.2}]

    sft = new_metrics("sft", "lora")  # trl's SFTTrainer logs entropy and mean_token_accuracy
    add_trainer_log(sft, 2, {"loss": 2.5, "entropy": 3.25, "mean_token_accuracy": 0.5, "num_tokens": 900.0})
    add_trainer_log(sft, 2, {"eval_loss": 2.75, "eval_entropy": 3.5, "eval_mean_token_accuracy": 0.25})
    assert (series_values(sft, "entropy"), series_values(sft, "token_accuracy")) == ([(2, 3.25)], [(2, 0.5)])
    assert sft["eval_log"] == [{"step": 2, "eval_loss": 2.75, "eval_entropy": 3.5, "eval_token_accuracy": 0.25}]

    reward_model = new_metrics("rm", "full")  # trl's RewardTrainer logs "accuracy" and "margin"
    add_trainer_log(reward_model, 1, {"loss": 0.69, "accuracy": 0.25, "margin": -0.1, "mean_reward": 0.0})
    assert reward_model["log"][0] == {
        "step": 1, "loss": 0.69, "learning_rate": 0.0, "epoch": 0.0, "reward_accuracy": 0.25, "reward_margin": -0.1,
    }  # fmt: skip


def test_reward_curves_are_drawn_beside_the_loss_and_summarised(tmp_path):
    metrics = dpo_like_metrics()
    plots = write_plots(metrics, tmp_path, "dpo · lora · run")
    assert [plot.name for plot in plots] == ["loss.png", "rewards.png", "margin.png", "accuracy.png"]
    assert all(plot.read_bytes().startswith(b"\x89PNG") for plot in plots)
    lines = summary_lines(metrics, None, plots)
    assert "reward margin (chosen − rejected): 0.000 → 1.500  ▁▃█" in lines
    assert "evaluation loss (last): 0.310" in lines
    assert not any(line.startswith(("adapter:", "model:")) for line in lines)  # nothing trained to point at


def test_read_metrics_refuses_what_is_not_a_metrics_file(tmp_path):
    write_metrics(tmp_path / "metrics.json", dpo_like_metrics())
    assert read_metrics(tmp_path / "metrics.json")["stage"] == "dpo"
    for text in ("{not json", '{"stage": "sft"}', '{"log": [{"loss": 1.0}]}'):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ValueError):
            read_metrics(tmp_path / "bad.json")


def spec_with(**sections) -> Spec:
    return Spec.model_validate(
        {
            "model": {"name_or_path": "m"},
            "data": {"datasets": [{"path": "d.json"}]},
            "train": {"epochs": 2.0, "micro_batch_size": 32, "precision": "fp32", "warmup_ratio": 1.0},
            **sections,
        }
    )


def test_the_plan_not_the_spec_sets_batch_and_precision(tmp_path):
    arguments = training_arguments(RunFolder(tmp_path, spec_with(), cpu_plan("bf16")))
    assert (arguments["per_device_train_batch_size"], arguments["gradient_accumulation_steps"]) == (4, 2)
    assert (arguments["bf16"], arguments["fp16"], arguments["use_cpu"]) == (True, False, True)
    assert (arguments["max_steps"], arguments["num_train_epochs"]) == (-1, 2.0)
    assert arguments["output_dir"] == str(tmp_path / "checkpoints")
    assert 0.999 < warmup_fraction(1.0) < 1 and warmup_fraction(0.1) == 0.1


def test_tensorboard_is_the_default_monitor_and_logs_into_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    arguments = training_arguments(RunFolder(tmp_path / "run-7", spec_with(), cpu_plan()))
    assert (arguments["report_to"], arguments["run_name"]) == (["tensorboard"], "run-7")
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "run-7" / "tensorboard")

    quiet = training_arguments(RunFolder(tmp_path, spec_with(monitor={"report_to": []}), cpu_plan()))
    assert quiet["report_to"] == "none"


def test_wandb_and_mlflow_are_named_in_the_spec_and_keyed_from_the_environment(tmp_path, monkeypatch):
    import importlib.util

    spec = spec_with(monitor={"report_to": ["wandb", "mlflow"], "project": "prefs", "run_name": "dpo-β0.1"})
    folder = RunFolder(tmp_path, spec, cpu_plan())
    installed = importlib.util.find_spec
    for name in ("WANDB_PROJECT", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)

    # Not installed here: a user error that says what to install, before any model is loaded.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "wandb" else installed(name))
    with pytest.raises(RuntimeUserError, match="monitor.report_to names wandb") as refused:
        training_arguments(folder)
    assert "pip install wandb" in refused.value.hint

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # as if both were installed
    arguments = training_arguments(folder)
    assert (arguments["report_to"], arguments["run_name"]) == (["wandb", "mlflow"], "dpo-β0.1")
    assert monitor_environment(folder) == {
        "TENSORBOARD_LOGGING_DIR": str(tmp_path / "tensorboard"),
        "WANDB_PROJECT": "prefs",
        "MLFLOW_EXPERIMENT_NAME": "prefs",
    }
    import os

    assert os.environ["WANDB_PROJECT"] == "prefs" and "WANDB_API_KEY" not in monitor_environment(folder)


@pytest.mark.parametrize("optimizer", ["adamw", "adamw_8bit", "paged_adamw_8bit"])
def test_the_trainer_builds_the_optimizer_the_spec_names(tmp_path, optimizer):
    from transformers import Trainer, TrainingArguments

    spec = spec_with()
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"optimizer": optimizer})})
    arguments = training_arguments(RunFolder(tmp_path, spec, cpu_plan()))
    built, options = Trainer.get_optimizer_cls_and_kwargs(TrainingArguments(**{**arguments, "report_to": "none"}))
    if optimizer == "adamw":
        assert "optim" not in arguments and built.__name__ == "AdamW" and built.__module__.startswith("torch")
    else:
        pytest.importorskip("bitsandbytes")
        assert built.__module__.startswith("bitsandbytes") and options["optim_bits"] == 8
        assert options["is_paged"] == optimizer.startswith("paged")


def test_the_summary_sets_the_measured_peak_beside_the_plans_estimate():
    from ftc.runs.peak_memory import memory_line

    cuda = {"allocated_gib": 40.0, "reserved_gib": 43.5, "planned_allocated_gib": 42.0, "planned_reserved_gib": 45.4}
    assert memory_line(cuda) == (
        "peak memory per device: 40.00 GiB allocated, 43.50 reserved; the plan estimated 42.00 allocated (+5%), "
        "45.40 reserved"
    )
    cpu = memory_line({"host_rss_gib": 1.5, "planned_host_gib": 0.25})
    assert cpu.startswith("peak host memory (process RSS, libraries included): 1.50 GiB") and "0.25" in cpu
    assert memory_line({}) is None
    lines = summary_lines({**dpo_like_metrics(), "peak_memory": cuda}, None, [])
    assert any(line.startswith("peak memory per device") for line in lines)


def test_the_peak_is_read_from_the_plans_device_less_the_context(monkeypatch):
    from dataclasses import replace

    import torch

    from ftc.compiler.plan import Decision, MemoryEstimate
    from ftc.runtime.distributed.peak_memory import peak_memory

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 30 * 1024**3)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 32 * 1024**3)
    estimate = MemoryEstimate(
        terms={"weights": 30.0, "context": 0.5}, allocated_gib=30.5, reserved_gib=33.0, capacity_gib=80.0, host_gib=4.0
    )
    plan = replace(cpu_plan(), backend=Decision("cuda", "mocked"), memory=estimate)
    assert peak_memory(plan) == {
        "allocated_gib": 30.0, "reserved_gib": 32.0, "planned_allocated_gib": 30.0, "planned_reserved_gib": 32.5
    }  # fmt: skip
    on_cpu = peak_memory(replace(cpu_plan(), memory=estimate))
    assert on_cpu["host_rss_gib"] > 0.05 and on_cpu["planned_host_gib"] == 4.0


def test_the_summary_says_how_long_the_data_took_and_whether_the_cache_had_it():
    prepared = {"cache": "hit", "records": 50000, "seconds": 0.04, "records_per_s": 1250000}
    lines = summary_lines({**dpo_like_metrics(), "startup_s": 5.9, "data_preparation": prepared}, None, [])
    assert "startup 5.9 s (process start → first step), data 0.04 s (50,000 records, cache hit)" in lines[-1]
