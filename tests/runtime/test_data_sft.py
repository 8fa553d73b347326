"""The SFT stage with the data layer's options: an eval split logged beside the loss, and streaming.

A few steps of the tiny model each, in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftc.quickstart.tiny import tiny_records
from ftc.spec.models import Spec


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def train_sft(run_folder, train_in_process):
    """`train_sft(run_dir, model_dir, data)`: the SFT stage on this data section, written and trained; its metrics."""

    def write_and_train(run_dir: Path, model_dir: Path, data: dict, **train: object) -> dict:
        return train_in_process(run_folder(sft_spec(run_dir, model_dir, data, **train)))

    return write_and_train


def sft_spec(run_dir: Path, model_dir: Path, data: dict, **train: object) -> dict:
    """The data section is the test's own: several datasets, formats found from their records, the data options."""
    spec = {
        "model": {"name_or_path": str(model_dir), "template": "llama3"},
        "data": {"cutoff_len": 128, **data},
        "train": {
            "stage": "sft",
            "method": "lora",
            "global_batch_size": 8,  # the plan: micro-batch 4 × 2 accumulation steps
            "learning_rate": 1e-2,
            "max_steps": 6,
            "seed": 0,
            "logging_steps": 3,
            "save_steps": 6,
            **train,
        },
        "output": {"dir": str(run_dir)},
    }
    spec["train"] = {key: value for key, value in spec["train"].items() if value is not None}  # None: leave out
    return spec


@pytest.mark.slow
def test_sft_evaluates_the_held_out_split_at_every_logging_step(tmp_path, tiny_model_dir, train_sft, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", tiny_records(40))
    metrics = train_sft(tmp_path / "run", tiny_model_dir, {"datasets": [{"path": str(data)}], "eval_ratio": 0.25})
    assert "evaluation: 10 held-out examples" in capsys.readouterr().out
    assert [entry["step"] for entry in metrics["eval_log"]] == [3, 6]
    first, last = (entry["eval_loss"] for entry in metrics["eval_log"])
    assert 0 < last < first  # held-out loss falls as the model learns the tasks


@pytest.mark.slow
def test_streamed_sft_reads_only_what_the_steps_consume(tmp_path, tiny_model_dir, train_sft, capsys):
    # 6 steps × 8 examples = 48 records (plus a batch read ahead); a bad record at line 400 is never reached.
    path = write_jsonl(tmp_path / "big.jsonl", tiny_records(399) + ["not a record"] + tiny_records(100))
    held = write_jsonl(tmp_path / "held.jsonl", tiny_records(8, seed=1))
    data = {"datasets": [{"path": str(path)}], "eval_datasets": [{"path": str(held)}], "streaming": True}
    metrics = train_sft(tmp_path / "run", tiny_model_dir, data)
    assert metrics["log"][-1]["step"] == 6 and len(metrics["eval_log"]) == 2
    assert "data: streamed from 1 dataset" in capsys.readouterr().out


def test_three_shapes_mixed_become_examples_with_reply_labels(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from ftc.runtime.data.loading import load_conversations
    from ftc.runtime.data.tokenize import IGNORE_INDEX, encode_conversations, use_template

    records = tiny_records(12)
    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {"messages": [{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}]}
            for r in records
        ],
    )
    sharegpt = write_jsonl(
        tmp_path / "sharegpt.jsonl",
        [
            {"conversations": [{"from": "human", "value": r["instruction"]}, {"from": "gpt", "value": r["output"]}]}
            for r in records
        ],
    )
    faq = tmp_path / "faq.csv"
    faq.write_text(
        "question,answer\n" + "".join(f'"{r["instruction"]}","{r["output"]}"\n' for r in records), encoding="utf-8"
    )
    data = Spec.model_validate(
        {
            "model": {"name_or_path": str(tiny_model_dir)},
            "data": {
                "datasets": [
                    {"path": str(chats), "format": "messages", "weight": 2.0},
                    {"path": str(sharegpt), "format": "sharegpt", "weight": 1.0},
                    {"path": str(faq), "columns": {"instruction": "question", "output": "answer"}, "weight": 1.0},
                ],
                "mix_size": 40,
            },
            "train": {"max_steps": 1},
        }
    ).data
    conversations = load_conversations(data, seed=0)
    assert sorted(Path(c.where.split(" ")[0]).name for c in conversations).count("chats.jsonl") == 20

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    use_template(tokenizer, "llama3")
    encoded = encode_conversations(tokenizer, conversations, "llama3", cutoff_len=128)
    assert len(encoded.examples) == 40 and encoded.dropped == 0
    for example, conversation in zip(encoded.examples, conversations, strict=True):
        reply = [token for token in example["labels"] if token != IGNORE_INDEX]
        assert tokenizer.decode(reply) == conversation.messages[-1]["content"] + "<|eot_id|>"


@pytest.mark.slow
def test_streamed_sft_packs_as_it_reads(tmp_path, tiny_model_dir, train_sft, monkeypatch, capsys):
    from ftc.runtime.data import packing
    from ftc.runtime.data import streaming as data_stream

    monkeypatch.setattr(data_stream, "PACKING_WINDOW", 24)
    collate, examples_per_row = packing.PackedCollator.__call__, []

    def counting(collator, rows):  # what reaches the collator: rows that still know their examples
        examples_per_row.extend(len(row.get("seq_lengths") or [1]) for row in rows)
        return collate(collator, rows)

    monkeypatch.setattr(packing.PackedCollator, "__call__", counting)
    # Packed, a row of 128 tokens holds several records, so 6 steps of 8 rows read well past 48 records,
    # but not to line 400.
    path = write_jsonl(tmp_path / "big.jsonl", tiny_records(399) + ["not a record"])
    data = {"datasets": [{"path": str(path)}], "streaming": True, "packing": True}
    metrics = train_sft(tmp_path / "run", tiny_model_dir, data)
    assert [entry["step"] for entry in metrics["log"]][-1] == 6
    assert "packed 24 examples at a time into rows of 128" in capsys.readouterr().out
    assert len(examples_per_row) >= 48 and sum(examples_per_row) / len(examples_per_row) > 2
    assert metrics["log"][-1]["loss"] < metrics["log"][0]["loss"]
