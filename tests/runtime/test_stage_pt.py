"""Stage pt: a causal LM on raw text learns it, with every method, packed or not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ftc.compiler.plan import Decision
from ftc.quickstart.tiny import write_tiny_texts
from ftc.runs.folder import load_run_folder
from ftc.runtime.data.texts import encode_texts
from tests.tiny_runs import SHORT, cpu_plan, tiny_spec


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    return write_tiny_texts(tmp_path_factory.mktemp("data") / "texts.jsonl", n=96)


def pt_run(run_folder, tmp_path, model_dir, texts, method="lora", packing=False, plan=None, **sections):
    spec = tiny_spec(
        tmp_path / "run",
        model_dir,
        texts,
        "text",
        preset=SHORT,
        stage="pt",
        method=method,
        max_steps=6,
        lr_scheduler="constant",
    )
    spec["data"]["packing"] = packing
    return load_run_folder(run_folder({**spec, **sections}, plan))


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_loss_falls(tmp_path, tiny_model_dir, texts, run_folder, train_in_process, method, packing, capsys):
    folder = pt_run(run_folder, tmp_path, tiny_model_dir, texts, method, packing)
    metrics = train_in_process(folder.path)
    assert ("rows of up to 128 tokens" in capsys.readouterr().out) == packing  # the run says how it packed
    assert metrics["stage"] == "pt" and metrics["method"] == method
    assert metrics["peak_memory"]["host_rss_gib"] > 0.1  # the CPU's peak, beside the plan's estimate
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]
    saved = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    assert (folder.trained / saved).is_file() and (folder.trained / "tokenizer.json").is_file()


@pytest.mark.slow
def test_freeze_learns_too(tmp_path, tiny_model_dir, texts, run_folder, train_in_process):
    folder = pt_run(run_folder, tmp_path, tiny_model_dir, texts, "freeze", True, freeze={"trainable_layers": 1})
    metrics = train_in_process(folder.path)
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]


@pytest.mark.slow  # bitsandbytes' import and CPU kernels
def test_qlora_learns_too(tmp_path, tiny_model_dir, texts, run_folder, train_in_process):
    plan = replace(cpu_plan(), quantization_bits=Decision(4, "fixed by the test"))
    metrics = train_in_process(pt_run(run_folder, tmp_path, tiny_model_dir, texts, "qlora", True, plan).path)
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]


def test_documents_are_framed_and_long_ones_are_cut_not_truncated(tiny_tokenizer):
    from ftc.runtime.data.loading import TextDocument

    long_text = " ".join(["apple river stone"] * 40)
    data = encode_texts(tiny_tokenizer, [TextDocument("a", "apple"), TextDocument("b", long_text)], cutoff_len=32)
    first = data.examples[0]["input_ids"]
    assert first[0] == tiny_tokenizer.bos_token_id and first[-1] == tiny_tokenizer.eos_token_id
    pieces = data.examples[1:]
    assert data.split == 1 and len(pieces) > 1 and all(len(piece["input_ids"]) <= 32 for piece in pieces)
    whole = [tiny_tokenizer.bos_token_id, *tiny_tokenizer(long_text, add_special_tokens=False)["input_ids"]]
    assert [token for piece in pieces for token in piece["input_ids"]] == [*whole, tiny_tokenizer.eos_token_id]
    assert all(example["labels"] == example["input_ids"] for example in data.examples)


@pytest.mark.slow
def test_held_out_documents_are_evaluated_at_every_logging_step(
    tmp_path, tiny_model_dir, texts, run_folder, train_in_process
):
    spec = tiny_spec(tmp_path / "eval", tiny_model_dir, texts, "text", preset=SHORT, stage="pt", max_steps=4)
    spec["data"].update(packing=True, eval_ratio=0.2)
    metrics = train_in_process(run_folder(spec))
    assert [entry["step"] for entry in metrics["eval_log"]] == [1, 2, 3, 4]
    assert metrics["eval_log"][-1]["eval_loss"] < metrics["eval_log"][0]["eval_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_streamed_documents_are_read_only_as_far_as_training_goes(
    tmp_path, tiny_model_dir, run_folder, train_in_process, monkeypatch, packing, capsys
):
    from ftc.runtime.data import streaming as data_stream

    monkeypatch.setattr(data_stream, "PACKING_WINDOW", 32)
    path = write_tiny_texts(tmp_path / "corpus.jsonl", n=400)
    with path.open("a", encoding="utf-8") as corpus:  # reached only if the stream were read whole
        corpus.write("not a record\n")
    spec = tiny_spec(
        tmp_path / "run", tiny_model_dir, path, "text", preset=SHORT, stage="pt", max_steps=6, lr_scheduler="constant"
    )
    spec["data"].update(packing=packing, streaming=True)
    metrics = train_in_process(run_folder(spec))
    out = capsys.readouterr().out
    assert "data: streamed from 1 dataset" in out
    assert ("packed 32 examples at a time into rows of 128" in out) == packing
    assert [entry["step"] for entry in metrics["log"]] == [1, 2, 3, 4, 5, 6]
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]
