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
from ftc.runtime.data.preference import encode_pairs
from ftc.runtime.preference_fit import fit_preferences


def run(folder: RunFolder) -> None:
    spec, preference, seed = folder.spec, folder.spec.preference, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)

    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    fit_preferences(
        folder,
        pairs,
        held_out,
        trainer_class=ORPOTrainer,
        config_class=ORPOConfig,
        settings={"max_length": spec.data.cutoff_len, "beta": preference.beta},
        encode=encode_pairs,
        reference=False,  # a reference-free loss
    )
