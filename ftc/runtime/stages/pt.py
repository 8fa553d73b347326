"""PT: continued pre-training, a causal LM on raw text, through transformers' Trainer.

Every token is a target. With `data.packing` several documents share each row (`ftc.runtime.packing`)
without attending to each other; otherwise each example is a row of its own, padded per batch.
"""

from __future__ import annotations

from ftc.runtime.data import load_texts
from ftc.runtime.model import load_model, load_tokenizer, prepare_trainable
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.packing import PackedCollator, PaddingCollator, pack_examples, packing_summary
from ftc.runtime.run_folder import RunFolder
from ftc.runtime.texts import describe_texts, encode_texts
from ftc.runtime.trainer_args import training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec = folder.spec
    documents = load_texts(spec.data, spec.train.seed)  # first: a bad record is reported before the heavy imports

    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer = load_tokenizer(spec.model)
    data = encode_texts(tokenizer, documents, spec.data.cutoff_len)
    print(describe_texts(data), flush=True)
    rows, collator = data.examples, PaddingCollator(tokenizer.pad_token_id)
    if spec.data.packing:
        rows, collator = pack_examples(data.examples, spec.data.cutoff_len), PackedCollator(tokenizer.pad_token_id)
        print(packing_summary(data.examples, rows, spec.data.cutoff_len), flush=True)

    model = prepare_trainable(load_model(spec.model, folder.plan, spec.train.method), spec, folder.plan, folder.path)
    recorder = MetricsRecorder(folder.metrics, stage="pt", method=spec.train.method)
    trainer = Trainer(
        model=model,
        # Our collator reads seq_lengths, a column the model's forward does not take.
        args=TrainingArguments(**training_arguments(folder), remove_unused_columns=False),
        train_dataset=Dataset.from_list(rows),
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
