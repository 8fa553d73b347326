"""RM: a reward model trained on (prompt, chosen, rejected) pairs, through trl's RewardTrainer.

The base gets a one-output score head in place of its LM head; the loss (Bradley-Terry) asks the
score of prompt + chosen to beat that of prompt + rejected. trl gets conversational records and
renders them with our template (see `ftc.runtime.data.preference`); a pair over cutoff_len is dropped,
not cut, since the score of a cut reply is the score of another text.
"""

from __future__ import annotations

from functools import partial

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import load_preferences, train_eval_split
from ftc.runtime.data.preference import encode_pairs, tokenizer_and_records
from ftc.runtime.model.reference import reward_lora_config, reward_model_to_train
from ftc.runtime.training import fit


def run(folder: RunFolder) -> None:
    spec, seed = folder.spec, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)

    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    tokenizer, data, evaluated = tokenizer_and_records(spec, pairs, held_out, partial(encode_pairs, drop_long=True))

    set_seed(seed)  # the new score head starts from the seed: the same spec trains the same reward model
    model = reward_model_to_train(spec.model, folder.plan, spec.train.method)
    fit(
        folder,
        model,
        tokenizer,
        data.records,
        evaluated,
        trainer_class=RewardTrainer,
        config_class=RewardConfig,
        settings={"max_length": spec.data.cutoff_len},
        peft_config=reward_lora_config(spec.lora, model) if spec.train.method == "lora" else None,
    )
