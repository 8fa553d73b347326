"""The training stages: one record per stage, holding everything the rest of ftc asks of it.

The spec reads which data and keys a stage takes, the compiler what it holds in memory and how it may
be laid out, the runtime which module runs it. Nothing outside this file and the stage's own runtime
module branches on a stage's name (a test in the suite says so): a new stage is a record here plus a
module in `ftc.runtime.stages`.

Records only, importing nothing: the spec layer, the launcher and `ftc validate` read them without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What a stage's examples are; each data format makes one kind (ftc.records.formats).
DataKind = Literal["text", "conversation", "preference", "kto"]
# When a stage samples replies before it updates: each micro-batch's on its own, or every reply of a
# process's step at once.
Sampling = Literal["micro-batch", "step"]
# Whether a stage scores its replies with a reward model: always, or where no built-in reward function does.
RewardModel = Literal["needed", "optional"]
# Where the loss meets the vocabulary: trl's chunked head, the model's own loss, or liger-kernel's fused linear
# cross-entropy where train.kernels lists it (ftc.compiler.memory.logits, ftc.kernels).
LossHead = Literal["fused", "model", "liger"]

CONVERSATION_FORMATS = ("alpaca", "sharegpt", "messages")


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    module: str  # the runtime module that runs it, `run(run_folder)`; imported only when the stage runs
    data: DataKind
    formats: tuple[str, ...]  # the data formats it reads (those of its kind); a starter names the first
    # The loss compares a chosen and a rejected reply in one forward: two rows per example.
    paired: bool = False
    # Before the loss's forward, a forward without gradients of each example's prompt with another example's reply
    # (a KL estimate): one more row per example through the model, whose activations are freed before the loss's.
    kl_rows: bool = False
    # A frozen copy of the policy gives reference log-probabilities. With an adapter, peft switches the
    # adapter off instead, and there is no second model.
    reference: bool = False
    reward_model: RewardModel | None = None  # ppo.reward_model: a frozen scorer beside the policy
    samples: Sampling | None = None  # a rollout stage: it generates replies, then learns from them
    # How its trainer can compute the loss, the one accelerators use first: "fused" is trl's chunked head (no
    # batch × seq × vocab logits at once), "model" the model's own loss from its full logits (faster on the CPU).
    # A kernel's head (ftc.kernels) is listed where the stage's trainer lets that kernel compute the loss: trl's
    # SFT, DPO, KTO and GRPO trainers refuse liger's for their own fused head, ORPO reads the logits itself.
    loss_heads: tuple[LossHead, ...] = ("model",)
    # Its trainer takes each reply's log-probabilities (and the chosen reply's NLL) from the full logits its
    # own way, instead of the model's loss: bytes held per logit at the start of the backward. The peak of
    # trl's unfused path is in fp32 (a gradient per way the logits are used, and their sum); it is counted
    # for every precision. None: the model's own loss (ftc.compiler.memory.logits).
    logit_bytes: float | None = None
    # Its trainer is transformers' Trainer or one of trl's, which apply train.kernels' layer kernels to the model.
    trainer_kernels: bool = True
    # Its trl trainer casts a quantized model's adapter to bf16 (QLoRA's recipe) whatever the precision;
    # the others keep peft's fp32 adapter. The runtime checks the dtype it finds (ftc.runtime.plan_check).
    bf16_quantized_adapter: bool = False
    least_micro_batch: int = 1  # it cannot learn from fewer examples per micro-batch...
    least_micro_batch_why: str = ""  # ...because it does this (said after "train.stage = 'x'")
    # Its loop is ftc's own: one process or a replica per device (single, ddp), never sharded.
    replicas_only: bool = False
    # NEFTune (train.neftune_alpha): its transformers trainer adds noise to the input embeddings while it trains.
    embedding_noise: bool = False
    packs: bool = False  # data.packing: several examples share a row
    # train.shift_attention: its rows are padded by ftc's collator, which pads them to whole groups; the others'
    # trainers pad (or sample) their rows themselves.
    shift_attention: bool = False
    streams: bool = False  # data.streaming: records are read while training runs
    # We tokenize its rows ourselves (the others hand records to trl): they are kept in the prepared-data cache.
    cached_rows: bool = False
    # A new scalar score head takes the LM head's place: no vocabulary-wide logits, no text to chat with,
    # and no adapter of the base's to start from.
    score_head: bool = False
    # It trains an image+text model on records with images: its rows keep their image files and the model's processor
    # makes each batch (pixels, image tokens). A stage that cannot is refused for such a model by the planner...
    takes_images: bool = False
    no_images_why: str = ""  # ...because of this (said after "train.stage = 'x' cannot train an image+text model: ")
    methods: tuple[str, ...] = ("full", "freeze", "lora", "qlora", "oft")  # the training methods it runs with
    reads: tuple[str, ...] = ()  # the keys of [preference] and [ppo] it reads ("section.key")
    # The values of preference.loss_type its trainer runs (trl's names), when it reads that key; the spec
    # language takes every stage's, and refuses one the stage in train.stage does not run.
    loss_types: tuple[str, ...] = ()
    estimate_note: str = ""  # what the memory estimate assumes of it beyond the common terms

    @property
    def sections(self) -> tuple[str, ...]:
        """The stage's own spec sections: those of the keys it reads, in order."""
        return tuple(dict.fromkeys(key.partition(".")[0] for key in self.reads))

    @property
    def judged(self) -> bool:
        """It trains on replies someone judged (chosen over rejected, or desirable or not), loaded whole."""
        return self.data in ("preference", "kto")


def _registry(*stages: Stage) -> dict[str, Stage]:
    return {stage.name: stage for stage in stages}


# The [ppo] keys both rollout stages read.
_ROLLOUT_KEYS = (
    "ppo.reward_model",
    "ppo.kl_coef",
    "ppo.clip_range",
    "ppo.ppo_epochs",
    "ppo.max_new_tokens",
    "ppo.temperature",
)

# In the order of the spec language's train.stage values (its messages and schema list them so).
STAGES: dict[str, Stage] = _registry(
    Stage(
        "pt",
        "pre-training on raw text; the loss falls on every token",
        "ftc.runtime.stages.pt",
        data="text",
        formats=("text",),
        loss_heads=("model", "liger"),  # transformers' Trainer: liger's default set, its loss included
        embedding_noise=True,
        packs=True,
        shift_attention=True,
        cached_rows=True,
        streams=True,
        no_images_why="pre-training reads raw text documents, which hold no images",
    ),
    Stage(
        "sft",
        "supervised fine-tuning; the loss falls on the assistant's replies",
        "ftc.runtime.stages.sft",
        data="conversation",
        formats=CONVERSATION_FORMATS,
        loss_heads=("fused", "model"),
        bf16_quantized_adapter=True,
        embedding_noise=True,
        packs=True,
        shift_attention=True,
        cached_rows=True,
        streams=True,
        takes_images=True,
    ),
    Stage(
        "rm",
        "reward model: a score head learns to rank chosen over rejected",
        "ftc.runtime.stages.rm",
        data="preference",
        formats=("preference",),
        paired=True,
        bf16_quantized_adapter=True,
        score_head=True,
        # The new score head must train: freeze would leave it out, qlora would quantize it.
        methods=("full", "lora"),
        no_images_why="its score head is loaded as a *ForSequenceClassification model, and transformers has no such "
        "class for an image+text model",
    ),
    Stage(
        "ppo",
        "PPO: sampled replies scored by a reward model, clipped updates, KL",
        "ftc.runtime.stages.ppo",
        data="conversation",
        formats=CONVERSATION_FORMATS,  # prompts: each conversation without its last reply
        reference=True,
        reward_model="needed",
        samples="micro-batch",
        # Under ZeRO-3 or FSDP the rollout's generate() and the reference pass with the adapter off
        # would each need the shards gathered; ftc's loop keeps whole replicas instead.
        replicas_only=True,
        trainer_kernels=False,  # ftc's own loop, not a transformers trainer
        reads=(*_ROLLOUT_KEYS, "ppo.gamma", "ppo.lam", "ppo.clip_range_value", "ppo.value_loss_coef"),
        estimate_note="PPO: reference and reward model (the policy's shape) beside the policy; sampling a "
        "micro-batch at a time with a KV cache as long as cutoff_len",
        no_images_why="ftc's rollout loop samples from text prompts only: it gives generate() no pixels",
    ),
    Stage(
        "grpo",
        "GRPO: each sampled reply's reward against its group's, through trl",
        "ftc.runtime.stages.grpo",
        data="conversation",
        formats=CONVERSATION_FORMATS,
        reference=True,
        reward_model="optional",
        # trl's GRPOTrainer generates every reply of a process's step at once: its generation batch is
        # the per-device batch × steps per generation, which is the accumulation.
        samples="step",
        bf16_quantized_adapter=True,
        reads=(
            *_ROLLOUT_KEYS,
            "ppo.num_generations",
            "ppo.reward_functions",
            "ppo.target_words",
            "ppo.reply_pattern",
        ),
        estimate_note="GRPO: a reference beside the policy (a reward model, if any, not counted); each process "
        "samples all its replies of a step at once, with a KV cache as long as cutoff_len",
        no_images_why="its prompts are handed to trl as text: the images would not reach the policy's generate()",
    ),
    Stage(
        "dpo",
        "direct preference optimisation against a frozen reference",
        "ftc.runtime.stages.dpo",
        data="preference",
        formats=("preference",),
        paired=True,
        reference=True,
        loss_heads=("fused",),
        bf16_quantized_adapter=True,
        reads=("preference.beta", "preference.loss_type", "preference.ftx"),
        loss_types=(
            "sigmoid",
            "hinge",
            "ipo",
            "robust",
            "bco_pair",
            "sppo_hard",
            "nca_pair",
            "aot",
            "aot_unpaired",
            "apo_zero",
            "apo_down",
            "discopop",
            "sigmoid_norm",
        ),
        # trl's DPOTrainer takes the processor and leaves pair rows with images to our collator
        # (ftc.runtime.data.images.PairImageCollator); the reference sees the same pixels.
        takes_images=True,
    ),
    Stage(
        "kto",
        "KTO: unpaired desirable / undesirable replies against a reference",
        "ftc.runtime.stages.kto",
        data="kto",
        formats=("kto",),
        reference=True,
        loss_heads=("fused",),
        bf16_quantized_adapter=True,
        kl_rows=True,
        least_micro_batch=2,
        least_micro_batch_why="estimates its KL term from the other examples of a micro-batch",
        reads=("preference.beta", "preference.desirable_weight", "preference.undesirable_weight"),
        # trl's KTOTrainer takes the processor and leaves rows with images to our collator
        # (ftc.runtime.data.images.KtoImageCollator), whose KL rows carry their prompts' images.
        takes_images=True,
    ),
    Stage(
        "orpo",
        "odds-ratio preference optimisation: SFT plus a preference term",
        "ftc.runtime.stages.orpo",
        data="preference",
        formats=("preference",),
        paired=True,
        logit_bytes=18,  # measured, as cpo's: its odds ratio comes from the same log-probabilities
        reads=("preference.beta",),
        no_images_why="trl's ORPOTrainer tokenizes text only: it passes the model no pixels",
    ),
    Stage(
        "cpo",
        "CPO and SimPO: reference-free preference losses on the policy's own log-probabilities",
        "ftc.runtime.stages.cpo",
        data="preference",
        formats=("preference",),
        paired=True,
        # trl's CPO trainer takes the log-probabilities from the full logits, as ORPO's does; measured on the
        # CPU in fp32: 18 bytes per logit with the NLL term (16 without it, SimPO), 10 under bf16 autocast.
        logit_bytes=18,
        reads=("preference.beta", "preference.loss_type", "preference.simpo_gamma", "preference.cpo_alpha"),
        # sigmoid is CPO; simpo is SimPO (length-normalised, with a target margin). trl's "alphapo" is left
        # out: it only switches to simpo with cpo_alpha 0, and AlphaPO's reward shape needs a key we lack.
        loss_types=("sigmoid", "hinge", "ipo", "simpo"),
        no_images_why="trl's CPOTrainer tokenizes text only: it passes the model no pixels",
    ),
)


def stages_reading(key: str) -> tuple[str, ...]:
    """The stages that read a key of their own sections ("preference.beta"), in registry order."""
    return tuple(name for name, stage in STAGES.items() if key in stage.reads)
