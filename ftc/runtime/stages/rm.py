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
from ftc.runtime.model.reference import load_reward_model, reward_lora_config
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.trainer_args import evaluation_arguments, training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec, seed = folder.spec, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    pairs, held_out = train_eval_split(load_preferences(spec.data, seed), spec.data, seed)

    from datasets import Dataset
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer, data, evaluated = tokenizer_and_records(spec, pairs, held_out, partial(encode_pairs, drop_long=True))

    set_seed(seed)  # the new score head starts from the seed: the same spec trains the same reward model
    model = load_reward_model(spec.model, folder.plan, spec.train.method)
    recorder = MetricsRecorder(folder.metrics, stage="rm", method=spec.train.method)
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(
            **training_arguments(folder),
            **evaluation_arguments(folder, bool(evaluated)),
            max_length=spec.data.cutoff_len,
        ),
        train_dataset=Dataset.from_list(data.records),
        eval_dataset=Dataset.from_list(evaluated) if evaluated else None,
        processing_class=tokenizer,
        peft_config=reward_lora_config(spec.lora, model) if spec.train.method == "lora" else None,
        callbacks=[recorder],
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
