"""ftc export merges what a run trained into one standalone model; ftc chat talks to it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.runtime.chat import chat
from ftc.runtime.export import export
from tests.tiny_runs import SHORT, tiny_spec

PROBE = "Name a colour."


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, run_folder, train_in_process):
    root = tmp_path_factory.mktemp("export-lora")
    data = write_tiny_alpaca(root / "data.json", seed=0)
    spec = tiny_spec(root / "run", tiny_model_dir, data, preset=SHORT, max_steps=4, save_steps=2)
    folder = load_run_folder(run_folder(spec))
    train_in_process(folder.path)
    return folder


def logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(PROBE, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_a_merged_lora_model_computes_what_base_plus_adapter_computes(lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = export(lora_run.path, dtype="fp32")
    assert merged_dir == lora_run.path / "merged"
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert tokenizer.chat_template  # the run's template travels with the export

    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, lora_run.trained).eval()
    expected = logits(adapted, tokenizer)
    torch.testing.assert_close(logits(merged, tokenizer), expected, atol=1e-4, rtol=1e-4)
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert not torch.allclose(logits(plain, tokenizer), expected, atol=1e-3)  # the adapter changed something


def test_export_refuses_to_overwrite_and_names_checkpoints(lora_run):
    export(lora_run.path, output=lora_run.path / "twice", dtype="fp32")
    with pytest.raises(RuntimeUserError, match="exists"):
        export(lora_run.path, output=lora_run.path / "twice")
    from_checkpoint = export(lora_run.path, output=lora_run.path / "ckpt", checkpoint="checkpoint-2", dtype="fp32")
    assert (from_checkpoint / "model.safetensors").is_file()
    with pytest.raises(RuntimeUserError, match="checkpoint-2"):
        export(lora_run.path, checkpoint="checkpoint-99")


@pytest.mark.slow
def test_a_full_run_exports_its_model(tmp_path, tiny_model_dir, run_folder, train_in_process):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_tiny_alpaca(tmp_path / "data.json", seed=0)
    spec = tiny_spec(
        tmp_path / "run", tiny_model_dir, data, preset=SHORT, method="full", max_steps=2, learning_rate=1e-3
    )
    folder = load_run_folder(run_folder(spec))
    train_in_process(folder.path)
    out = export(folder.path, dtype="fp32")
    tokenizer = AutoTokenizer.from_pretrained(out)
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    trained = AutoModelForCausalLM.from_pretrained(folder.trained).eval()
    torch.testing.assert_close(logits(exported, tokenizer), logits(trained, tokenizer))


def test_chat_answers_each_turn_with_the_conversation_so_far(lora_run):
    out = io.StringIO()
    code = chat(
        str(lora_run.path), max_new_tokens=6, lines=["hello", "/reset", "", "again", "/exit", "never read"], out=out
    )
    text = out.getvalue()
    assert code == 0
    assert text.count("assistant> ") == 2 and "(new conversation)" in text


def test_chat_through_the_cli_reads_stdin_until_it_ends(lora_run):
    result = subprocess.run(
        [sys.executable, "-m", "ftc", "chat", str(lora_run.path), "--max-new-tokens", "4"],
        input="hi there\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "assistant> " in result.stdout


def test_export_of_an_unfinished_run_is_a_user_error(tmp_path, tiny_model_dir, run_folder):
    data = write_tiny_alpaca(tmp_path / "data.json", seed=0)
    folder = load_run_folder(run_folder(tiny_spec(tmp_path / "run", tiny_model_dir, data, preset=SHORT)))
    result = subprocess.run(
        [sys.executable, "-m", "ftc", "export", str(folder.path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "has not finished" in result.stderr and "Traceback" not in result.stderr
    assert not Path(folder.path / "merged").exists()
