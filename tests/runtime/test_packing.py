"""Packing: rows filled tightly, and examples in one row that cannot see each other."""

from __future__ import annotations

import random

import pytest

from ftc.runtime.data.packing import PackedCollator, PaddingCollator, pack_examples, pack_lengths, packed_collator
from ftc.runtime.data.tokenize import IGNORE_INDEX


def test_every_example_lands_in_exactly_one_row_within_the_length():
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(500)]
    rows = pack_lengths(lengths, 128)
    assert sorted(index for row in rows for index in row) == list(range(500))
    assert all(sum(lengths[index] for index in row) <= 128 for row in rows)
    # Best-fit decreasing stays close to the bound of total tokens / row length.
    assert len(rows) <= sum(lengths) / 128 * 1.05 + 1


def test_an_example_longer_than_a_row_is_refused():
    with pytest.raises(ValueError, match="200 tokens"):
        pack_lengths([10, 200], 128)


def test_a_row_keeps_lengths_and_masks_each_examples_first_label():
    examples = [{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}, {"input_ids": [4, 5], "labels": [IGNORE_INDEX, 5]}]
    (row,) = pack_examples(examples, 8)
    assert row["input_ids"] == [1, 2, 3, 4, 5]
    # The token before 4 belongs to the other example: predicting 4 from it is no target.
    assert row["labels"] == [IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5]
    assert row["seq_lengths"] == [3, 2]


def test_the_collator_restarts_positions_per_example_and_pads_as_a_block_of_its_own():
    batch = PackedCollator(pad_token_id=0)(
        [
            {"input_ids": [1, 2, 3, 4, 5], "labels": [-100, 2, 3, -100, 5], "seq_lengths": [3, 2]},
            {"input_ids": [6, 7], "labels": [-100, 7], "seq_lengths": [2]},
        ]
    )
    assert "attention_mask" not in batch  # a mask would make transformers ignore the packed positions
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]]
    assert batch["input_ids"].tolist()[1] == [6, 7, 0, 0, 0]
    assert batch["labels"].tolist()[1] == [-100, 7, -100, -100, -100]


def test_for_flash_the_batch_is_one_flat_row_without_padding():
    # transformers' flash-attention reads packed position ids only in a batch of one row.
    collate = packed_collator(pad_token_id=0, attention="flash")
    batch = collate(
        [
            {"input_ids": [1, 2, 3, 4, 5], "labels": [-100, 2, 3, -100, 5], "seq_lengths": [3, 2]},
            {"input_ids": [6, 7], "labels": [-100, 7], "seq_lengths": [2]},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, 5, -100, 7]]
    assert not packed_collator(pad_token_id=0, attention="sdpa").flatten


@pytest.fixture(scope="module")
def examples():
    rng = random.Random(1)
    return [{"input_ids": [rng.randint(5, 400) for _ in range(n)], "labels": []} for n in (7, 12, 3, 9)]


@pytest.mark.parametrize("kernel,flatten", [("sdpa", False), ("eager", False), ("sdpa", True)])
def test_a_packed_example_has_the_logits_it_has_alone(tiny_model_dir, examples, kernel, flatten):
    """The proof that packed examples do not attend to each other: each one's logits are unchanged."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=kernel).eval()
    for example in examples:
        example["labels"] = list(example["input_ids"])
    rows = pack_examples(examples, 20)  # 12+7 and 9+3: two rows, one padded
    assert sorted(len(row["seq_lengths"]) for row in rows) == [2, 2]
    batch = PackedCollator(pad_token_id=0, flatten=flatten)(rows)
    with torch.no_grad():
        packed = model(**{key: value for key, value in batch.items() if key != "labels"}).logits
    lengths = [(row_index, length) for row_index, row in enumerate(rows) for length in row["seq_lengths"]]
    starts = {}
    for row_index, length in lengths:
        row_at = 0 if flatten else row_index
        start = starts.get(row_at, 0)
        ids = batch["input_ids"][row_at, start : start + length]
        with torch.no_grad():
            alone = model(input_ids=ids[None]).logits[0]
        torch.testing.assert_close(packed[row_at, start : start + length], alone, atol=1e-5, rtol=1e-4)
        starts[row_at] = start + length
    assert sum(starts.values()) == sum(len(example["input_ids"]) for example in examples)


def test_without_reset_positions_the_examples_would_see_each_other(tiny_model_dir, examples):
    """The same check fails for a plain concatenation: the test above can tell packing from mixing."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    first, second = examples[0]["input_ids"], examples[1]["input_ids"]
    with torch.no_grad():
        joined = model(input_ids=torch.tensor([first + second])).logits[0, len(first) :]
        alone = model(input_ids=torch.tensor([second])).logits[0]
    assert not torch.allclose(joined, alone, atol=1e-3)


def test_packed_and_padded_batches_give_the_same_loss(tiny_model_dir, examples):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    for example in examples:
        example["labels"] = list(example["input_ids"])
    packed = PackedCollator(pad_token_id=0)(pack_examples(examples, 20))
    padded = PaddingCollator(pad_token_id=0)(examples)
    with torch.no_grad():
        torch.testing.assert_close(model(**packed).loss, model(**padded).loss, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_sft_learns_with_packing(tmp_path, tiny_model_dir, run_folder, train_in_process, capsys):
    from ftc.quickstart.tiny import write_tiny_alpaca
    from tests.tiny_runs import SHORT, tiny_spec

    data = write_tiny_alpaca(tmp_path / "tiny.json", n=96)
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, data, preset=SHORT, max_steps=8, lr_scheduler="constant")
    spec["data"]["packing"] = True
    metrics = train_in_process(run_folder(spec))
    assert "packing: 96 examples into " in capsys.readouterr().out
    assert metrics["last_loss"] < 0.8 * metrics["first_loss"], metrics["log"]


def test_a_stream_is_packed_a_window_at_a_time_and_lazily():
    from ftc.runtime.data.streaming import pack_stream

    rng = random.Random(1)
    lengths = [rng.randint(2, 60) for _ in range(100)]
    examples = [{"input_ids": [index] * n, "labels": [0] * n} for index, n in enumerate(lengths)]
    consumed = []

    def stream():
        for example in examples:
            consumed.append(example["input_ids"][0])
            yield example

    rows = pack_stream(stream(), 128, window=10)
    first = next(rows)
    assert len(consumed) == 10  # one window read, not the stream
    rows = [first, *rows]
    owners = [sorted({token for token in row["input_ids"]}) for row in rows]
    assert sorted(owner for row in owners for owner in row) == list(range(100))  # each example exactly once
    assert all(len(row["input_ids"]) <= 128 and sum(row["seq_lengths"]) == len(row["input_ids"]) for row in rows)
    assert all(len({owner // 10 for owner in row}) == 1 for row in owners)  # never across two windows
