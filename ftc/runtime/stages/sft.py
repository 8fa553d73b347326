"""SFT: supervised fine-tuning on conversations, through trl's SFTTrainer.

We tokenize ourselves (input_ids + labels, -100 outside the replies), so the trainer uses the
dataset as is and only truncates it to max_length. The loss goes through trl's fused head or the model's
own, as the plan chose (plan.loss_head; `ftc.runtime.loss_head`). Held-out conversations (data.eval_ratio or
data.eval_datasets) are evaluated at every logging step; with data.streaming the conversations are
read, encoded (and packed) while training runs (`ftc.runtime.data.streaming`).
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.images import ImageCollator, image_stage_data, vision_parts_of
from ftc.runtime.data.packing import PaddingCollator, packed_collator
from ftc.runtime.data.prepared import token_stage_data
from ftc.runtime.data.recipes import CONVERSATIONS, stage_tokenizer
from ftc.runtime.data.streaming import streamed_examples
from ftc.runtime.loss_head import with_model_loss
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.training import fit

RECIPE = CONVERSATIONS  # how its records become rows (ftc launch prepares them the same way)


def run(folder: RunFolder) -> None:
    spec = folder.spec
    from trl import SFTConfig, SFTTrainer

    parts = vision_parts_of(spec.model)
    if parts is not None:
        return _run_with_images(folder, parts)

    tokenizer = stage_tokenizer(spec)
    # Our rows come with their labels: padding them is all a batch needs (trl's own collator does more, slower).
    whole_groups = spec.attention_group or 1  # train.shift_attention computes rows in whole groups
    collator = PaddingCollator(tokenizer.pad_token_id, whole_groups)
    if spec.data.packing:
        collator = packed_collator(tokenizer.pad_token_id, folder.plan.attention.value, whole_groups)
    data = token_stage_data(spec, tokenizer, stream=lambda: streamed_examples(spec, tokenizer))
    fit(
        folder,
        load_trainable(folder),
        tokenizer,
        data.train,
        data.evaluated,
        trainer_class=with_model_loss(SFTTrainer) if folder.plan.loss_head.value == "model" else SFTTrainer,
        config_class=SFTConfig,
        # Our rows are tokenized, cut and labelled already: trl's own pass over them would only cost time.
        settings={"max_length": spec.data.cutoff_len, "dataset_kwargs": {"skip_prepare_dataset": True}},
        data_collator=collator,
        preparation=data.report,
    )


def _run_with_images(folder: RunFolder, parts: object) -> None:
    """An image+text model: rows keep their images, and the processor makes each batch (`ftc.runtime.data.images`)."""
    from trl import SFTConfig, SFTTrainer

    from ftc.runtime.model.processor import save_processor

    spec = folder.spec
    processor, rows, held_out = image_stage_data(spec, parts)
    fit(
        folder,
        load_trainable(folder),
        processor.tokenizer,
        rows,
        held_out,
        trainer_class=with_model_loss(SFTTrainer) if folder.plan.loss_head.value == "model" else SFTTrainer,
        config_class=SFTConfig,
        settings={
            "max_length": spec.data.cutoff_len,
            "dataset_kwargs": {"skip_prepare_dataset": True},
            "remove_unused_columns": False,  # the collator reads the rows' texts and image files
        },
        data_collator=ImageCollator(processor, spec.data.cutoff_len),
    )
    save_processor(processor, folder.trained)
