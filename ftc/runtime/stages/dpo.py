"""DPO: direct preference optimisation on (prompt, chosen, rejected) pairs, through trl's DPOTrainer.

trl gets conversational records and renders them with our template (see `ftc.runtime.data.preference`).
The loss compares the policy's log-probability ratio of chosen over rejected with the reference's;
`preference.ftx` adds an SFT term on the chosen reply. An image+text model is given pair rows that keep
their image files, and trl the model's processor: our collator encodes each reply's row as SFT encodes a
conversation (`ftc.runtime.data.images`), and trl's forward passes its pixels to the policy and the reference alike.
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.images import PairImageCollator, image_pair_data
from ftc.runtime.data.loading import load_preferences, train_eval_split
from ftc.runtime.data.preference import encode_pairs
from ftc.runtime.preference_fit import ImagePath, fit_preferences


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
    fit_preferences(
        folder,
        pairs,
        held_out,
        trainer_class=DPOTrainer,
        config_class=DPOConfig,
        settings=settings,
        encode=encode_pairs,
        images=ImagePath(image_pair_data, PairImageCollator),
    )
