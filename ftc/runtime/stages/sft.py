"""SFT: supervised fine-tuning on conversations, through trl's SFTTrainer.

We tokenize ourselves (input_ids + labels, -100 outside the replies), so the trainer uses the
dataset as is and only truncates it to max_length.
"""

from __future__ import annotations

from ftc.runtime.data import load_conversations
from ftc.runtime.model import attach_lora_plus, load_model, load_tokenizer, prepare_trainable
from ftc.runtime.outputs import finish, save_trained
from ftc.runtime.packing import PackedCollator, pack_examples, packing_summary
from ftc.runtime.run_folder import RunFolder
from ftc.runtime.tokenize import describe_data, encode_conversations, use_template
from ftc.runtime.trainer_args import training_arguments
from ftc.runtime.training import train


def run(folder: RunFolder) -> None:
    spec = folder.spec
    conversations = load_conversations(spec.data)  # first: a bad record is reported before the heavy imports

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ftc.runtime.callbacks import MetricsRecorder

    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, spec.model.template)
    data = encode_conversations(tokenizer, conversations, spec.model.template, spec.data.cutoff_len)
    print(describe_data(data, tokenizer, spec.model.template), flush=True)
    rows, collator = data.examples, None  # None: trl pads each batch itself
    if spec.data.packing:
        rows, collator = pack_examples(data.examples, spec.data.cutoff_len), PackedCollator(tokenizer.pad_token_id)
        print(packing_summary(data.examples, rows, spec.data.cutoff_len), flush=True)

    model = prepare_trainable(load_model(spec.model, folder.plan, spec.train.method), spec, folder.plan, folder.path)
    recorder = MetricsRecorder(folder.metrics, stage="sft", method=spec.train.method)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**training_arguments(folder), max_length=spec.data.cutoff_len),
        train_dataset=Dataset.from_list(rows),
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    attach_lora_plus(trainer, spec.lora)
    train(trainer, folder)

    save_trained(trainer, folder)
    finish(folder, recorder.metrics)
