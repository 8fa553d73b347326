"""ORPO: odds-ratio preference optimisation on (prompt, chosen, rejected) pairs, through trl's ORPOTrainer.

trl gets conversational records and renders them with our template (see `ftc.runtime.data.preference`).
The loss is SFT on the chosen reply plus `preference.beta` (ORPO's λ) times an odds-ratio term
that favours chosen over rejected; no reference model is needed. ORPO still lives in trl's
experimental package and tokenizes its own way: it adds the tokenizer's BOS before a prompt and its
EOS after a reply that do not already have them (with our templates, a template whose end marker is
not the EOS token gets both).
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import load_preferences, train_eval_split
from ftc.runtime.data.preference import encode_pairs, tokenizer_and_records
from ftc.runtime.model.loading import load_model, prepare_trainable
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.trainer_args import evaluation_arguments, training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec, preference, seed = folder.spec, folder.spec.preference, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)

    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer, data, evaluated = tokenizer_and_records(spec, pairs, held_out, encode_pairs)

    model = prepare_trainable(load_model(spec.model, folder.plan, spec.train.method), spec, folder.plan, folder.path)
    recorder = MetricsRecorder(folder.metrics, stage="orpo", method=spec.train.method)
    trainer = ORPOTrainer(
        model=model,
        args=ORPOConfig(
            **training_arguments(folder),
            **evaluation_arguments(folder, bool(evaluated)),
            max_length=spec.data.cutoff_len,
            beta=preference.beta,
        ),
        train_dataset=Dataset.from_list(data.records),
        eval_dataset=Dataset.from_list(evaluated) if evaluated else None,
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
