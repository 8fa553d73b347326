"""KTO: Kahneman-Tversky optimisation on unpaired (prompt, completion, desirable?) examples, through trl.

trl gets conversational records and renders them with our template (see `ftc.runtime.data.preference`).
Each completion's log-probability ratio against the reference is pushed up when desirable and down
when not, around a KL estimate taken from mismatched prompt/completion pairs within a batch. An image+text
model is given rows that keep their image files, and trl the model's processor: our collator encodes each
example as SFT encodes a conversation, and its KL row as the same prompt and images with another example's reply
(`ftc.runtime.data.images`); trl's forwards pass the pixels to the policy and the reference alike.
"""

from __future__ import annotations

import random

from ftc.errors import RuntimeUserError
from ftc.runs.folder import RunFolder
from ftc.runtime.data.images import KtoImageCollator, image_kto_data
from ftc.runtime.data.loading import load_kto_examples, train_eval_split
from ftc.runtime.data.preference import encode_kto_examples
from ftc.runtime.preference_fit import ImagePath, fit_preferences


def run(folder: RunFolder) -> None:
    spec, preference, seed = folder.spec, folder.spec.preference, folder.spec.train.seed
    # First: a bad record is reported before the heavy imports.
    examples, held_out = train_eval_split(load_kto_examples(spec.data, seed), spec.data, seed)
    if folder.plan.micro_batch_size.value < 2:
        raise RuntimeUserError(
            "kto estimates its KL term from the other examples of a micro-batch, and the plan's micro-batch is 1",
            "plan again: `ftc plan` chooses 2 or more for kto, or says why it cannot",
        )
    # trl reads KTO data in order (the KL pairs are fixed per batch), so the shuffle is ours, from the seed.
    random.Random(seed).shuffle(examples)

    from trl import KTOConfig, KTOTrainer

    settings = {
        "max_length": spec.data.cutoff_len,
        "beta": preference.beta,
        "desirable_weight": preference.desirable_weight,
        "undesirable_weight": preference.undesirable_weight,
    }
    fit_preferences(
        folder,
        examples,
        held_out,
        trainer_class=KTOTrainer,
        config_class=KTOConfig,
        settings=settings,
        encode=encode_kto_examples,
        what="examples",
        images=ImagePath(image_kto_data, KtoImageCollator),
    )
