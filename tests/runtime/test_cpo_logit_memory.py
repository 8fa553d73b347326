"""The bytes per logit the plan counts for trl's CPO and ORPO losses (ftc.stages: `logit_bytes`), measured: their
trainers take log-probabilities from the full logits and hold more of them than the model's own loss does.

A one-layer model with a wide vocabulary, so the logits are nearly all there is; live tensor storages are
counted after every aten op (benchmarks/memory_accuracy.py) through the trainers' own forward and loss code,
called on a stand-in for the trainer's few attributes they read."""

from __future__ import annotations

import gc
import types

import pytest

from ftc.compiler.memory.logits import MODEL_LOSS_BYTES_PER_LOGIT
from ftc.stages import STAGES

VOCAB, ROWS, SEQ = 32768, 2, 128  # two pairs: four rows of 128 tokens


@pytest.fixture(scope="module")
def wide():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    ids = torch.randint(0, VOCAB, (ROWS, SEQ))
    labels = ids.clone()
    labels[:, : SEQ // 2] = -100  # the prompt's half is not scored
    batch = {"chosen_input_ids": ids, "chosen_attention_mask": torch.ones_like(ids), "chosen_labels": labels}
    batch |= {key.replace("chosen", "rejected"): value.flip(0) for key, value in batch.items()}
    return LlamaForCausalLM(config), batch


def peak_bytes_per_logit(model, step) -> float:
    from benchmarks.memory_accuracy import LiveStoragePeak

    step()  # once first, so nothing lazily created is counted
    model.zero_grad(set_to_none=True)
    gc.collect()
    with LiveStoragePeak(list(model.parameters())) as meter:
        before = meter.current
        step()
    model.zero_grad(set_to_none=True)
    return (meter.peak - before) / (2 * ROWS * SEQ * VOCAB)


def trl_step(trainer, model, batch, nll_weight: float, loss_type: str):
    """One loss and backward through the trainer class's own code (trl's CPOTrainer or ORPOTrainer)."""
    own = types.SimpleNamespace(
        is_encoder_decoder=False, pad_token_id=0, padding_value=0, label_pad_token_id=-100, aux_loss_enabled=False,
        accelerator=types.SimpleNamespace(device="cpu"), cpo_alpha=nll_weight, loss_type=loss_type, beta=0.1,
        label_smoothing=0.0, simpo_gamma=0.5, alpha=0.0,
        concatenated_inputs=trainer.concatenated_inputs, get_batch_logps=trainer.get_batch_logps,
    )  # fmt: skip

    def step():
        chosen, rejected, _, _, nll = trainer.concatenated_forward(own, model, batch)[:5]
        if hasattr(trainer, "cpo_loss"):
            losses = trainer.cpo_loss(own, chosen, rejected)[0]
        else:
            losses = trainer.odds_ratio_loss(
                types.SimpleNamespace(beta=0.1, accelerator=own.accelerator), chosen, rejected
            )[0]
        (losses.mean() + nll_weight * nll).backward()

    return step


def test_the_meter_reads_the_model_losss_bytes_per_logit(wide):
    import torch

    model, batch = wide
    ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
    measured = peak_bytes_per_logit(model, lambda: model(ids, labels=labels).loss.backward())
    assert measured == pytest.approx(MODEL_LOSS_BYTES_PER_LOGIT, rel=0.03)


@pytest.mark.parametrize("stage", ["cpo", "orpo"])
def test_cpo_and_orpo_hold_the_bytes_per_logit_their_records_say(wide, stage):
    from trl.experimental.cpo import CPOTrainer
    from trl.experimental.orpo import ORPOTrainer

    model, batch = wide
    trainer = {"cpo": CPOTrainer, "orpo": ORPOTrainer}[stage]
    measured = peak_bytes_per_logit(model, trl_step(trainer, model, batch, 1.0, "sigmoid"))  # CPO: NLL at weight 1
    assert measured == pytest.approx(STAGES[stage].logit_bytes, rel=0.03)
    assert measured > 1.4 * MODEL_LOSS_BYTES_PER_LOGIT  # the model loss's figure would promise too little


def test_simpo_without_its_nll_term_holds_less_than_counted(wide):
    from trl.experimental.cpo import CPOTrainer

    model, batch = wide
    measured = peak_bytes_per_logit(model, trl_step(CPOTrainer, model, batch, 0.0, "simpo"))
    assert MODEL_LOSS_BYTES_PER_LOGIT < measured <= STAGES["cpo"].logit_bytes
