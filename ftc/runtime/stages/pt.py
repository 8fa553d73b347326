"""PT: continued pre-training, a causal LM on raw text, through transformers' Trainer.

Every token is a target. With `data.packing` several documents share each row (`ftc.runtime.data.packing`)
without attending to each other; otherwise each example is a row of its own, padded per batch.
Held-out documents (data.eval_ratio or data.eval_datasets) are evaluated at every logging step; with
data.streaming the documents are read, encoded (and packed) while training runs (`ftc.runtime.data.streaming`).
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.packing import PaddingCollator, packed_collator
from ftc.runtime.data.prepared import token_stage_data
from ftc.runtime.data.recipes import TEXTS, stage_tokenizer
from ftc.runtime.data.streaming import streamed_texts
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.training import fit

RECIPE = TEXTS  # how its records become rows (ftc launch prepares them the same way)


def run(folder: RunFolder) -> None:
    spec = folder.spec
    from transformers import Trainer, TrainingArguments

    tokenizer = stage_tokenizer(spec)
    whole_groups = spec.attention_group or 1  # train.shift_attention computes rows in whole groups
    collator = PaddingCollator(tokenizer.pad_token_id, whole_groups)
    if spec.data.packing:
        collator = packed_collator(tokenizer.pad_token_id, folder.plan.attention.value, whole_groups)
    data = token_stage_data(spec, tokenizer, stream=lambda: streamed_texts(spec, tokenizer))
    fit(
        folder,
        load_trainable(folder),
        tokenizer,
        data.train,
        data.evaluated,
        trainer_class=Trainer,
        config_class=TrainingArguments,
        # our collator reads seq_lengths, which the model's forward does not take
        settings={"remove_unused_columns": False},
        data_collator=collator,  # the packed one reads an unpacked evaluation row as one example
        preparation=data.report,
    )
