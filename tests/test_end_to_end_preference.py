"""A user's DPO run: a spec file → `ftc launch` → run folder → runtime → an adapter, then `ftc report` on it."""

from __future__ import annotations

import json
import shutil

import pytest

from ftc.quickstart.tiny import write_tiny_preferences
from tests.commands import ftc

SPEC = """\
[model]
name_or_path = "tiny model"
template = "llama3"

[data]
cutoff_len = 96

[[data.datasets]]
path = "data/pairs.jsonl"
format = "preference"

[train]
stage = "dpo"
method = "lora"
global_batch_size = 8
micro_batch_size = 4
learning_rate = 5e-3
max_steps = 10
seed = 0
logging_steps = 1
save_steps = 10

[preference]
beta = 0.1
loss_type = "sigmoid"

[monitor]
report_to = ["tensorboard"]
run_name = "dpo-e2e"

[output]
dir = "runs/dpo"
"""


@pytest.mark.slow
def test_launch_trains_dpo_and_report_redraws_its_curves(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "tiny model")
    pairs = json.loads(write_tiny_preferences(tmp_path / "pairs.json", n=64).read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    (tmp_path / "job.toml").write_text(SPEC)

    launched = ftc("launch", str(tmp_path / "job.toml"), "--target", "local", "-H", "cpu")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    run_dir = tmp_path / "runs" / "dpo"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["stage"], metrics["method"]) == ("dpo", "lora")
    margins = [entry["reward_margin"] for entry in metrics["log"]]
    assert len(margins) == 10 and margins[-1] > margins[0] + 0.3, margins
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not (run_dir / "adapter" / "ref").exists()  # trl's reference copy of the adapter is not the result
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))  # the default monitor, in the run folder
    assert "reward margin (chosen − rejected)" in launched.stdout

    for plot in ("loss.png", "margin.png"):
        (run_dir / plot).unlink()
    reported = ftc("report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.startswith(f"dpo · lora · {run_dir}")
    assert f"adapter: {run_dir / 'adapter'}" in reported.stdout
    assert all((run_dir / plot).read_bytes().startswith(b"\x89PNG") for plot in ("loss.png", "margin.png"))
