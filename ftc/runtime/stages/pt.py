"""PT: continued pre-training, a causal LM on raw text, through transformers' Trainer.

Every token is a target. With `data.packing` several documents share each row (`ftc.runtime.data.packing`)
without attending to each other; otherwise each example is a row of its own, padded per batch.
Held-out documents (data.eval_ratio or data.eval_datasets) are evaluated at every logging step; with
data.streaming the documents are read, encoded (and packed) while training runs (`ftc.runtime.data.streaming`).
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import TextDocument, load_eval_datasets, load_texts, train_eval_split
from ftc.runtime.data.packing import PaddingCollator, pack_examples, packed_collator, packing_summary
from ftc.runtime.data.streaming import describe_stream, streamed_texts
from ftc.runtime.data.texts import describe_texts, encode_texts
from ftc.runtime.model.loading import load_model, load_tokenizer, prepare_trainable
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.trainer_args import evaluation_arguments, training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec, seed = folder.spec, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    if spec.data.streaming:
        documents, held_out = None, load_eval_datasets(spec.data, TextDocument)
    else:
        documents, held_out = train_eval_split(load_texts(spec.data, seed), spec.data, seed)

    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer = load_tokenizer(spec.model)
    collator = PaddingCollator(tokenizer.pad_token_id)
    if spec.data.packing:
        collator = packed_collator(tokenizer.pad_token_id, folder.plan.attention.value)
    if documents is None:
        rows = streamed_texts(spec, tokenizer)
        print(describe_stream(spec.data), flush=True)
    else:
        data = encode_texts(tokenizer, documents, spec.data.cutoff_len)
        print(describe_texts(data), flush=True)
        rows = data.examples
        if spec.data.packing:
            rows = pack_examples(data.examples, spec.data.cutoff_len)
            print(packing_summary(data.examples, rows, spec.data.cutoff_len), flush=True)
        rows = Dataset.from_list(rows)
    evaluated = encode_texts(tokenizer, held_out, spec.data.cutoff_len).examples if held_out else None
    if evaluated:
        print(f"evaluation: {len(evaluated)} held-out examples, at every logging step", flush=True)

    model = prepare_trainable(load_model(spec.model, folder.plan, spec.train.method), spec, folder.plan, folder.path)
    recorder = MetricsRecorder(folder.metrics, stage="pt", method=spec.train.method)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            **training_arguments(folder),
            **evaluation_arguments(folder, bool(evaluated)),
            remove_unused_columns=False,  # our collator reads seq_lengths, which the model's forward does not take
        ),
        train_dataset=rows,
        eval_dataset=Dataset.from_list(evaluated) if evaluated else None,
        data_collator=collator,  # the packed one reads an unpacked evaluation row as one example
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
