"""The tiny builders: deterministic from the seed, and fast enough for a quickstart."""

from __future__ import annotations

import json

from safetensors.torch import load_file

from ftc.quickstart.tiny import build_tiny_model, tiny_records, write_tiny_alpaca


def test_same_seed_same_tokenizer_and_weights(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other_seed = build_tiny_model(tmp_path / "other", seed=1)

    assert (again / "tokenizer.json").read_bytes() == (tiny_model_dir / "tokenizer.json").read_bytes()
    first, second = load_file(tiny_model_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(first[name].equal(second[name]) for name in first)

    different = load_file(other_seed / "model.safetensors")
    assert not all(first[name].equal(different[name]) for name in first)


def test_tokenizer_speaks_llama3(tiny_tokenizer):
    for token in ("<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"):
        assert len(tiny_tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert tiny_tokenizer.pad_token_id is not None and tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    assert 256 < len(tiny_tokenizer) <= 1024
    prompt = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_alpaca_file_is_seeded(tmp_path):
    first = json.loads(write_tiny_alpaca(tmp_path / "a.json", n=50, seed=3).read_text())
    second = json.loads(write_tiny_alpaca(tmp_path / "b.json", n=50, seed=3).read_text())
    assert first == second and len(first) == 50
    assert first != tiny_records(50, seed=4)
    assert all(set(record) == {"instruction", "input", "output"} for record in first)
    assert {"Add the two numbers.", "Write the word in capital letters."} <= {r["instruction"] for r in first}
