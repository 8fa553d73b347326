"""The whole path a user takes: a spec file → `ftc launch` → run folder → runtime → a trained adapter."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.spec.chat_templates import TEMPLATES

SPEC = """\
[model]
name_or_path = "tiny model"       # a local folder beside the spec, with a space in its name
template = "llama3"

[data]
cutoff_len = 128

[[data.datasets]]
path = "data/tiny.json"
format = "alpaca"

[train]
stage = "sft"
method = "lora"
global_batch_size = 8
micro_batch_size = 4
learning_rate = 1e-2
max_steps = 50
seed = 0
warmup_ratio = 0.05
logging_steps = 5
save_steps = 25

[lora]
rank = 8
alpha = 16
target = "all"

[output]
dir = "runs/e2e"
"""


@pytest.mark.slow
def test_launch_trains_a_lora_that_learned_and_loads_back(tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(tiny_model_dir, tmp_path / "tiny model")
    write_tiny_alpaca(tmp_path / "data" / "tiny.json", n=256, seed=0)
    (tmp_path / "job.toml").write_text(SPEC)

    # Started from another folder: relative paths in the spec are the spec's, not the caller's.
    result = subprocess.run(
        [sys.executable, "-m", "ftc", "launch", str(tmp_path / "job.toml"), "--target", "local"],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "e2e"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["stage"], metrics["method"]) == ("sft", "lora")
    steps = [entry["step"] for entry in metrics["log"]]
    assert steps[0] == 1 and steps[-1] == 50 and steps == sorted(steps)
    assert metrics["last_loss"] < 0.8 * metrics["first_loss"], metrics["log"]
    assert 0 < metrics["startup_s"] < 300 and metrics["train_runtime_s"] > 0
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-25", "checkpoint-50"]
    assert (run_dir / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert "→" in result.stdout and f"adapter: {run_dir / 'adapter'}" in result.stdout

    adapter = run_dir / "adapter"
    assert AutoTokenizer.from_pretrained(adapter).chat_template == TEMPLATES["llama3"].jinja()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Add the two numbers.\n\n2 + 3"}], add_generation_prompt=True, return_tensors="pt"
    )["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        base_logits = base(prompt).logits
        tuned_logits = PeftModel.from_pretrained(base, adapter)(prompt).logits
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-3)
