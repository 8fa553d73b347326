"""DPO: direct preference optimisation on (prompt, chosen, rejected) pairs, through trl's DPOTrainer.

trl gets conversational records and renders them with our template (see `ftc.runtime.data.preference`).
The loss compares the policy's log-probability ratio of chosen over rejected with the reference's;
`preference.ftx` adds an SFT term on the chosen reply.
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import load_preferences, train_eval_split
from ftc.runtime.data.preference import encode_pairs, tokenizer_and_records
from ftc.runtime.model.loading import load_model, prepare_trainable
from ftc.runtime.model.reference import reference_model
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.trainer_args import evaluation_arguments, training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec, preference, seed = folder.spec, folder.spec.preference, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer, data, evaluated = tokenizer_and_records(spec, pairs, held_out, encode_pairs)

    model = prepare_trainable(load_model(spec.model, folder.plan, spec.train.method), spec, folder.plan, folder.path)
    recorder = MetricsRecorder(folder.metrics, stage="dpo", method=spec.train.method)
    trainer = DPOTrainer(
        model=model,
        ref_model=reference_model(spec, folder.plan),
        args=DPOConfig(
            **training_arguments(folder),
            **evaluation_arguments(folder, bool(evaluated)),
            max_length=spec.data.cutoff_len,
            beta=preference.beta,
            # ftx: an SFT term on the chosen reply beside the preference loss, weighted
            loss_type=[preference.loss_type, "sft"] if preference.ftx else [preference.loss_type],
            loss_weights=[1.0, preference.ftx] if preference.ftx else None,
        ),
        train_dataset=Dataset.from_list(data.records),
        eval_dataset=Dataset.from_list(evaluated) if evaluated else None,
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
