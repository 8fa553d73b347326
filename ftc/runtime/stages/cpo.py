"""CPO and SimPO: reference-free preference losses on (prompt, chosen, rejected) pairs, through trl's CPOTrainer.

trl gets conversational records and renders them with our template (see `ftc.runtime.data.preference`).
The loss compares the policy's own log-probabilities of the chosen and rejected replies, scaled by
`preference.beta`, with no reference model. With loss_type "sigmoid" (CPO) trl adds the chosen reply's
NLL at weight `cpo_alpha`; with "simpo" (SimPO) the log-probabilities are averaged per token and must
clear the margin `simpo_gamma`, and the NLL term is off unless cpo_alpha is set. CPO lives in trl's
experimental package and tokenizes as ORPO does: it adds the tokenizer's BOS before a prompt and its
EOS after a reply that do not already have them.
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

    from trl.experimental.cpo import CPOConfig, CPOTrainer

    fit_preferences(
        folder,
        pairs,
        held_out,
        trainer_class=CPOTrainer,
        config_class=CPOConfig,
        settings={
            "max_length": spec.data.cutoff_len,
            "beta": preference.beta,
            "loss_type": preference.loss_type,
            "simpo_gamma": preference.simpo_gamma,
            "cpo_alpha": preference.nll_weight,
        },
        encode=encode_pairs,
        reference=False,  # a reference-free loss
    )
