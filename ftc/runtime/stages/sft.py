"""SFT: supervised fine-tuning on conversations, through trl's SFTTrainer.

We tokenize ourselves (input_ids + labels, -100 outside the replies), so the trainer uses the
dataset as is and only truncates it to max_length. Held-out conversations (data.eval_ratio or
data.eval_datasets) are evaluated at every logging step; with data.streaming the conversations are
read, encoded (and packed) while training runs (`ftc.runtime.data.streaming`).
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import Conversation
from ftc.runtime.data.packing import packed_collator
from ftc.runtime.data.prepared import token_stage_data
from ftc.runtime.data.streaming import streamed_examples
from ftc.runtime.data.tokenize import describe_data, encode_conversations, use_template
from ftc.runtime.model.loading import load_tokenizer
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.training import fit


def run(folder: RunFolder) -> None:
    spec, template, cutoff_len = folder.spec, folder.spec.model.template, folder.spec.data.cutoff_len
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, template)
    collator = None  # trl pads each batch itself
    if spec.data.packing:
        collator = packed_collator(tokenizer.pad_token_id, folder.plan.attention.value)
    data = token_stage_data(
        spec,
        Conversation,
        encode=lambda records: encode_conversations(tokenizer, records, template, cutoff_len),
        describe=lambda data: describe_data(data, tokenizer, template),
        stream=lambda: streamed_examples(spec, tokenizer),
    )
    fit(
        folder,
        load_trainable(folder),
        tokenizer,
        data.train,
        data.evaluated,
        trainer_class=SFTTrainer,
        config_class=SFTConfig,
        # Our rows are tokenized, cut and labelled already: trl's own pass over them would only cost time.
        settings={"max_length": cutoff_len, "dataset_kwargs": {"skip_prepare_dataset": True}},
        data_collator=collator,
        preparation=data.report,
    )
