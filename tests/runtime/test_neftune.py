"""NEFTune (train.neftune_alpha): transformers' noise on the input embeddings, on while the trainer trains."""

from __future__ import annotations

import json

import pytest
import torch

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.quickstart.tiny import tiny_records
from ftc.runs.folder import RunFolder
from ftc.runtime.trainer_args import training_arguments
from ftc.spec import parse_spec
from ftc.spec.models import Spec
from tests.specs import VALID, as_dpo, refusal, replace
from tests.tiny_runs import QUICK, cpu_plan, series, tiny_spec

NEFTUNE = ("seed = 42", "seed = 42\nneftune_alpha = 5")


def test_the_alpha_reaches_the_trainer_and_the_plan_says_what_it_costs(tmp_path):
    spec = parse_spec(replace(VALID, *NEFTUNE), "job.toml")
    assert training_arguments(RunFolder(tmp_path, spec, cpu_plan()))["neftune_noise_alpha"] == 5
    arch = find_architecture(spec.model.name_or_path)
    plan = compile_plan(spec, parse_hardware("1xA100-80GB"), arch)
    assert any(note.startswith("NEFTune: uniform noise (alpha 5)") for note in plan.notes)
    without = compile_plan(parse_spec(VALID, "job.toml"), parse_hardware("1xA100-80GB"), arch)
    assert plan.memory == without.memory  # a transient below the forward's peak: no term moves


def test_a_stage_whose_trainer_adds_no_noise_refuses_it_at_the_key():
    found = refusal(replace(as_dpo(VALID), *NEFTUNE))
    assert (found.path, found.code) == ("train.neftune_alpha", "E-CONFLICT")
    assert "NEFTune is for the pt and sft stages, not 'dpo'" in found.message


@pytest.mark.slow
def test_sft_trains_with_noisy_embeddings_and_its_loss_falls(
    tmp_path, tiny_model_dir, run_folder, train_in_process, monkeypatch
):
    from transformers.integrations import neftune

    noised = []  # the embeddings' mode at each hooked forward, and how far the hook moved them
    hook = neftune.neftune_post_forward_hook

    def watched(module, inputs, output):
        moved = hook(module, inputs, output)
        noised.append((module.training, float((moved - output).abs().max())))
        return moved

    monkeypatch.setattr(neftune, "neftune_post_forward_hook", watched)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in tiny_records(64)), encoding="utf-8")
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, data, preset=QUICK, neftune_alpha=5.0)
    Spec.model_validate(spec)
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    loss = series(metrics, "loss")
    assert loss[-1] < loss[0]
    assert len(noised) == 2 * QUICK["max_steps"]  # every micro-step's forward, two per optimizer step
    assert all(training and moved > 0 for training, moved in noised)
    # alpha / sqrt(seq × hidden) bounds the noise: the tiny model's 64-wide embeddings, rows of 20+ tokens
    assert max(moved for _, moved in noised) <= 5.0 / torch.sqrt(torch.tensor(20 * 64.0))
