"""`python -m ftc.runtime RUN_DIR` end to end: a run folder written by hand, trained in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftc.chat_templates import TEMPLATES
from ftc.runtime.tiny import write_tiny_alpaca
from tests.runtime.run_folders import write_run_folder


def run_runtime(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftc.runtime", str(run_dir)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_lora_run_learns_and_leaves_a_loadable_adapter(tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_tiny_alpaca(tmp_path / "data" / "tiny.json", n=256, seed=0)
    run_dir = write_run_folder(tmp_path / "run", tiny_model_dir, data)

    result = run_runtime(run_dir)

    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["stage"], metrics["method"]) == ("sft", "lora")
    steps = [entry["step"] for entry in metrics["log"]]
    assert steps[0] == 1 and steps[-1] == 50 and steps == sorted(steps)
    assert metrics["first_loss"] == metrics["log"][0]["loss"] and metrics["last_loss"] == metrics["log"][-1]["loss"]
    assert metrics["last_loss"] < 0.8 * metrics["first_loss"], metrics["log"]
    assert 0 < metrics["startup_s"] < 120 and metrics["train_runtime_s"] > 0
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


def test_a_missing_dataset_exits_2_with_a_hint_and_no_traceback(tmp_path, tiny_model_dir):
    run_dir = write_run_folder(tmp_path / "run", tiny_model_dir, tmp_path / "data" / "absent.json")
    result = run_runtime(run_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("error: dataset ") and "not found" in result.stderr
    assert "(hint: " in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_an_unsupported_method_exits_2_before_loading_anything(tmp_path, tiny_model_dir):
    data = write_tiny_alpaca(tmp_path / "tiny.json", n=8)
    run_dir = write_run_folder(tmp_path / "run", tiny_model_dir, data, method="qlora")
    result = run_runtime(run_dir)
    assert result.returncode == 2
    assert "error: train.method = 'qlora' is not supported yet by the runtime (hint: " in result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_without_a_spec_exits_2(tmp_path):
    result = run_runtime(tmp_path)
    assert result.returncode == 2 and "spec.toml not found" in result.stderr and "Traceback" not in result.stderr
