"""DPO: direct preference optimisation on (prompt, chosen, rejected) pairs, through trl's DPOTrainer.

trl gets conversational records and renders them with our template (see `ftc.runtime.data.preference`).
The loss compares the policy's log-probability ratio of chosen over rejected with the reference's;
`preference.ftx` adds an SFT term on the chosen reply. An image+text model is given pair rows that keep
their image files, and trl the model's processor: our collator encodes each reply's row as SFT encodes a
conversation (`ftc.runtime.data.images`), and trl's forward passes its pixels to the policy and the reference alike.
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.images import PairImageCollator, image_pair_data, vision_parts_of
from ftc.runtime.data.loading import load_preferences, train_eval_split
from ftc.runtime.data.preference import encode_pairs, tokenizer_and_records
from ftc.runtime.model.reference import reference_model
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.training import fit


def run(folder: RunFolder) -> None:
    spec, preference, seed = folder.spec, folder.spec.preference, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)

    from trl import DPOConfig, DPOTrainer

    settings = {
        "max_length": spec.data.cutoff_len,
        "beta": preference.beta,
        # ftx: an SFT term on the chosen reply beside the preference loss, weighted
        "loss_type": [preference.loss_type, "sft"] if preference.ftx else [preference.loss_type],
        "loss_weights": [1.0, preference.ftx] if preference.ftx else None,
    }
    parts = vision_parts_of(spec.model)
    if parts is not None:
        processor, rows, evaluated = image_pair_data(spec, parts, pairs, held_out)
        fit(
            folder,
            load_trainable(folder),
            processor,
            rows,
            evaluated or None,
            trainer_class=DPOTrainer,
            config_class=DPOConfig,
            settings={**settings, "remove_unused_columns": False},  # the collator reads the rows' texts and files
            data_collator=PairImageCollator(processor, spec.data.cutoff_len),
            ref_model=reference_model(spec, folder.plan),
        )
        return
    tokenizer, data, evaluated = tokenizer_and_records(spec, pairs, held_out, encode_pairs)
    fit(
        folder,
        load_trainable(folder),
        tokenizer,
        data.records,
        evaluated,
        trainer_class=DPOTrainer,
        config_class=DPOConfig,
        settings=settings,
        ref_model=reference_model(spec, folder.plan),
    )
