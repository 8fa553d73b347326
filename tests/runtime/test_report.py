"""metrics.json bookkeeping, the sparkline and the trainer settings taken from spec and plan."""

from __future__ import annotations

import json

from ftc.runtime.metrics import add_trainer_log, new_metrics, write_metrics
from ftc.runtime.report import sparkline, summary_lines
from ftc.runtime.run_folder import RunFolder
from ftc.runtime.trainer_args import training_arguments, warmup_fraction
from ftc.spec.models import Spec
from tests.runtime.run_folders import cpu_plan


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
    lines = summary_lines(written, tmp_path / "adapter", tmp_path / "loss.png")
    assert lines[0].startswith("loss 6.500 → 5.000") and f"adapter: {tmp_path / 'adapter'}" in lines


def test_the_plan_not_the_spec_sets_batch_and_precision(tmp_path):
    spec = Spec.model_validate(
        {
            "model": {"name_or_path": "m"},
            "data": {"datasets": [{"path": "d.json"}]},
            "train": {"epochs": 2.0, "micro_batch_size": 32, "precision": "fp32", "warmup_ratio": 1.0},
        }
    )
    plan = cpu_plan("bf16")
    arguments = training_arguments(RunFolder(tmp_path, spec, plan))
    assert (arguments["per_device_train_batch_size"], arguments["gradient_accumulation_steps"]) == (4, 2)
    assert (arguments["bf16"], arguments["fp16"], arguments["use_cpu"]) == (True, False, True)
    assert (arguments["max_steps"], arguments["num_train_epochs"]) == (-1, 2.0)
    assert arguments["output_dir"] == str(tmp_path / "checkpoints")
    assert 0.999 < warmup_fraction(1.0) < 1 and warmup_fraction(0.1) == 0.1
