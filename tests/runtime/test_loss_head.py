"""SFT through the model's own loss (plan.loss_head = "model"): the same loss as trl's fused head, and its
entropy and token-accuracy metrics computed from the logits at the logged steps."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ftc.quickstart.tiny import tiny_records
from ftc.runtime.loss_head import METRIC_CHUNK_TOKENS, logs_next_step, token_metric_sums, tokens_in
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec


def test_the_metric_sums_are_those_of_the_whole_vocabulary_at_every_labelled_position():
    torch.manual_seed(0)
    rows, length, vocab = 3, 2 * METRIC_CHUNK_TOKENS + 17, 50  # chunks end inside a row
    logits = torch.randn(rows, length, vocab) * 3
    labels = torch.randint(0, vocab, (rows, length))
    labels[0, :40] = -100  # a prompt
    labels[1, :] = -100  # a row with nothing to learn
    labels[2, 200:] = -100  # padding
    labels[2, 150] = logits[2, 149].argmax()  # one sure hit
    entropy, correct, scored = token_metric_sums(logits, labels)

    targets = labels[:, 1:]
    where = targets != -100
    predicted = logits[:, :-1][where]
    probabilities = predicted.softmax(-1)
    assert scored == where.sum() == (length - 40) + 0 + (200 - 1)
    assert entropy == pytest.approx(float(-(probabilities * probabilities.log()).sum()), rel=1e-5)
    assert correct == (predicted.argmax(-1) == targets[where]).sum() >= 1


def test_a_batch_with_no_label_scores_nothing():
    entropy, correct, scored = token_metric_sums(torch.randn(2, 5, 7), torch.full((2, 5), -100))
    assert (float(entropy), float(correct), float(scored)) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("taken", "first", "every", "logged"),
    [(0, True, 5, True), (0, False, 5, False), (3, True, 5, False), (4, True, 5, True), (9, False, 5, True)],
)
def test_the_step_about_to_be_taken_is_logged_as_the_trainer_logs_it(taken, first, every, logged):
    state = SimpleNamespace(global_step=taken, logging_steps=every)
    args = SimpleNamespace(logging_first_step=first, logging_strategy="steps")
    assert logs_next_step(state, args) is logged


def test_tokens_are_the_attention_mask_or_every_position_of_a_packed_row():
    padded = {"input_ids": torch.zeros(2, 6), "attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2])}
    assert tokens_in(padded) == 10
    assert tokens_in({"input_ids": torch.zeros(1, 9)}) == 9


@pytest.mark.slow
def test_the_model_loss_trains_as_the_fused_head_and_logs_the_same_metrics(
    tmp_path, tiny_model_dir, run_folder, train_in_process
):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in tiny_records(64)), encoding="utf-8")
    runs = {}
    for head in ("fused", "model"):
        spec = tiny_spec(tmp_path / head, tiny_model_dir, data, preset=QUICK, max_steps=4, logging_steps=2)
        runs[head] = train_in_process(run_folder(spec, cpu_plan(loss_head=head)))
    fused, model = runs["fused"], runs["model"]
    assert [entry["step"] for entry in model["log"]] == [1, 2, 4]
    # Step 1 is logged alone: both heads saw the same two micro-batches from the same weights.
    assert model["log"][0]["loss"] == pytest.approx(fused["log"][0]["loss"], rel=1e-5)
    for name in ("entropy", "token_accuracy"):
        assert series(model, name)[0] == pytest.approx(series(fused, name)[0], rel=1e-4)
        assert len(series(model, name)) == len(series(fused, name)) == 3
    # Later steps train the same weights the same way: the curves stay together.
    assert series(model, "loss") == pytest.approx(series(fused, "loss"), rel=1e-3)
