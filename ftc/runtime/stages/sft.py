"""SFT: supervised fine-tuning on conversations, through trl's SFTTrainer.

We tokenize ourselves (input_ids + labels, -100 outside the replies), so the trainer uses the
dataset as is and only truncates it to max_length. Held-out conversations (data.eval_ratio or
data.eval_datasets) are evaluated at every logging step; with data.streaming the conversations are
read, encoded (and packed) while training runs (`ftc.runtime.data.streaming`).
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import Conversation, load_conversations, load_eval_datasets, train_eval_split
from ftc.runtime.data.packing import pack_examples, packed_collator, packing_summary
from ftc.runtime.data.streaming import describe_stream, streamed_examples
from ftc.runtime.data.tokenize import describe_data, encode_conversations, use_template
from ftc.runtime.model.loading import load_model, load_tokenizer, prepare_trainable
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.trainer_args import evaluation_arguments, training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec, seed = folder.spec, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    if spec.data.streaming:
        conversations, held_out = None, load_eval_datasets(spec.data, Conversation)
    else:
        conversations, held_out = train_eval_split(load_conversations(spec.data, seed), spec.data, seed)

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, spec.model.template)
    collator = None  # trl pads each batch itself
    if spec.data.packing:
        collator = packed_collator(tokenizer.pad_token_id, folder.plan.attention.value)
    if conversations is None:
        rows = streamed_examples(spec, tokenizer)
        print(describe_stream(spec.data), flush=True)
    else:
        data = encode_conversations(tokenizer, conversations, spec.model.template, spec.data.cutoff_len)
        print(describe_data(data, tokenizer, spec.model.template), flush=True)
        rows = data.examples
        if spec.data.packing:
            rows = pack_examples(data.examples, spec.data.cutoff_len)
            print(packing_summary(data.examples, rows, spec.data.cutoff_len), flush=True)
        rows = Dataset.from_list(rows)
    evaluated = None
    if held_out:
        evaluated = encode_conversations(tokenizer, held_out, spec.model.template, spec.data.cutoff_len).examples
        print(f"evaluation: {len(evaluated)} held-out examples, at every logging step", flush=True)

    model = prepare_trainable(load_model(spec.model, folder.plan, spec.train.method), spec, folder.plan, folder.path)
    recorder = MetricsRecorder(folder.metrics, stage="sft", method=spec.train.method)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(
            **training_arguments(folder),
            **evaluation_arguments(folder, bool(held_out)),
            max_length=spec.data.cutoff_len,
        ),
        train_dataset=rows,
        eval_dataset=Dataset.from_list(evaluated) if evaluated else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
