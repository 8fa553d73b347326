"""`ftc import` as users run it: the written file, the report, refusing to overwrite, no traceback."""

from __future__ import annotations

import json

from tests.commands import ftc
from tests.importers.helpers import BASE, write_data_folder

CONFIG = f"model_name_or_path: {BASE}\nstage: sft\nfinetuning_type: lora\ndataset: hello_alpaca\nnum_train_epochs: 1\n"


def test_import_writes_a_spec_that_validates_and_refuses_to_overwrite(tmp_path):
    write_data_folder(tmp_path / "data")
    (tmp_path / "lf.yaml").write_text(CONFIG + "plot_loss: true\n")
    first = ftc("import", "llamafactory", "lf.yaml", "-o", "job.toml", "--format", "json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["problems"] == [] and report["unmapped"] == [
        {"key": "plot_loss", "why": "ftc's report always plots the loss (ftc report)"}
    ]
    assert ftc("validate", "job.toml", cwd=tmp_path).returncode == 0
    again = ftc("import", "llamafactory", "lf.yaml", "-o", "job.toml", cwd=tmp_path)
    assert again.returncode == 1 and "job.toml exists" in again.stderr and "Traceback" not in again.stderr
    assert ftc("import", "llamafactory", "lf.yaml", "-o", "job.toml", "--force", cwd=tmp_path).returncode == 0


def test_a_bad_value_exits_with_its_line(tmp_path):
    write_data_folder(tmp_path / "data")
    (tmp_path / "lf.yaml").write_text(CONFIG + "lr_scheduler_type: polynomial\n")
    result = ftc("import", "llamafactory", "lf.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "lf.yaml:6: lr_scheduler_type:" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "job.toml").exists()
