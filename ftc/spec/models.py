"""The spec language: one pydantic model per TOML section.

Every model forbids unknown keys and is strict about types, because a spec is a contract: a
string where a number belongs is a mistake to report, not to coerce. Field descriptions become
the hints and, later, the JSON Schema.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

Stage = Literal["pt", "sft", "rm", "ppo", "grpo", "dpo", "kto", "orpo"]
Method = Literal["full", "freeze", "lora", "qlora"]
DataFormat = Literal["alpaca", "sharegpt", "messages", "preference", "kto", "text"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
Strategy = Literal["auto", "single", "ddp", "zero1", "zero2", "zero3", "fsdp"]
Offload = Literal["auto", "none", "optimizer", "optimizer+params"]
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw_8bit"]
Attention = Literal["auto", "eager", "sdpa", "flash"]
# PiSSA and OLoRA move the adapter's starting point into the base weights (which they change).
LoraInit = Literal["default", "gaussian", "pissa", "pissa_fast", "olora", "loftq"]


class Section(BaseModel):
    # defer_build: only Spec needs a validator; building one per section costs startup time.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def rule_error(message: str, hint: str, at: str | None = None) -> PydanticCustomError:
    """A cross-field rule broken; the diagnostics print its hint. `at` (a dotted key path from the top of
    the spec, e.g. "quantization.bits") is the key to report it at, when that is not where the rule lives;
    the message names the other side."""
    return PydanticCustomError("spec_rule", message, {"hint": hint, **({"at": at} if at else {})})


class ModelSection(Section):
    name_or_path: str = Field(min_length=1, description="Hub id or local folder of the base model.")
    template: str = Field(
        default="auto",
        min_length=1,
        description="Chat template name from ftc's registry, or 'auto' for the tokenizer's own.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    adapter: str | None = Field(
        default=None,
        min_length=1,
        description="A LoRA adapter to start from (an earlier run's adapter/ folder, relative to the spec, or a hub "
        "id): trained further by lora/qlora, merged into the base by full/freeze. New data, schedule and optimizer; "
        "to continue an interrupted run, use ftc launch --resume instead.",
    )
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own Python code; off unless you trust it."
    )
    architecture: dict[str, int | float | bool | str] | None = Field(
        default=None,
        description="Shape keys as in a config.json (model_type, hidden_size, ...), for a model ftc cannot look up.",
    )
    attention: Attention = Field(
        default="auto", description="Attention kernel: eager keeps seq × seq scores; sdpa and flash do not."
    )

    @field_validator("template")
    @classmethod
    def _known_template(cls, name: str) -> str:
        from ftc.chat_templates import TEMPLATES  # pure registry, no heavy imports

        if name != "auto" and name not in TEMPLATES:
            import difflib

            close = difflib.get_close_matches(name, list(TEMPLATES), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known: auto, " + ", ".join(sorted(TEMPLATES))
            raise rule_error(f"unknown chat template '{name}'", hint)
        return name


# The fields each data format reads from a record, by our names; [data.datasets.columns] maps them to the file's.
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "sharegpt": ("conversations", "system", "tools"),
    "messages": ("messages", "tools"),
    "preference": ("messages", "prompt", "instruction", "input", "system", "history", "chosen", "rejected"),
    "kto": ("messages", "prompt", "instruction", "input", "system", "history", "completion", "label"),
    "text": ("text",),
}


class DatasetSection(Section):
    path: str = Field(min_length=1, description="Local file or folder (relative to the spec), or a hub id.")
    format: DataFormat = Field(default="alpaca", description="How records are shaped.")
    split: str = Field(
        default="train", min_length=1, description="Split to read from a hub dataset or a saved DatasetDict folder."
    )
    revision: str | None = Field(default=None, description="Hub dataset revision (branch, tag or commit).")
    max_samples: int | None = Field(default=None, ge=1, description="Use at most this many records (the first ones).")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Our field name → the file's column name, for files that name fields their own way.",
    )
    weight: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="Share of the mixture, relative to the other datasets' weights; set on all datasets or none.",
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        data_format = info.data.get("format")  # absent when the format itself was invalid
        fields = FORMAT_FIELDS.get(data_format, ())
        unknown = sorted(set(columns) - set(fields))
        if data_format and unknown:
            raise rule_error(
                f"{', '.join(repr(name) for name in unknown)} is no field of the {data_format!r} format",
                f"the fields of {data_format!r} are: {', '.join(fields)}",
            )
        return columns


class DataSection(Section):
    datasets: list[DatasetSection] = Field(min_length=1, description="One or more datasets, mixed.")
    cutoff_len: int = Field(default=1024, ge=8, le=1_048_576, description="Maximum tokens per example.")
    packing: bool = Field(
        default=False,
        description="Pack several examples into each row of cutoff_len tokens (pt and sft); they never attend "
        "to one another.",
    )
    mix_size: int | None = Field(
        default=None,
        ge=1,
        description="Examples in a weighted mixture (default: the datasets' sizes summed); a dataset whose share "
        "exceeds its size is repeated, one below it is sampled without replacement, both from train.seed.",
    )
    eval_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="Fraction of the training examples held out for evaluation (0: none)."
    )
    eval_datasets: list[DatasetSection] = Field(
        default_factory=list, description="Datasets to evaluate on instead of a held-out eval_ratio."
    )
    streaming: bool = Field(
        default=False,
        description="Read and encode records while training instead of loading them first (pt and sft, with "
        "train.max_steps); JSONL, CSV, text and Parquet stream, a JSON list is read whole.",
    )

    @model_validator(mode="after")
    def _one_mixing_and_eval_rule(self) -> DataSection:
        weighted = [dataset.weight is not None for dataset in self.datasets]
        if any(weighted) and not all(weighted):
            raise rule_error("weight is set on some datasets but not all", "give every data.datasets a weight, or none")
        if self.mix_size is not None and not any(weighted):
            raise rule_error("mix_size sizes a weighted mixture, but no dataset has a weight", "set datasets' weight")
        if self.eval_ratio > 0 and self.eval_datasets:
            raise rule_error("eval_ratio and eval_datasets are both set", "keep one way to evaluate")
        if any(dataset.weight is not None for dataset in self.eval_datasets):
            raise rule_error("eval_datasets are read whole, not mixed: a weight there means nothing", "remove it")
        if self.streaming and self.eval_ratio > 0:
            raise rule_error(
                "a streamed dataset has no known size to hold a fraction out of", "give [[data.eval_datasets]] instead"
            )
        return self


class TrainSection(Section):
    stage: Stage = Field(default="sft", description="Training stage.")
    method: Method = Field(default="lora", description="Which parameters train.")
    global_batch_size: int = Field(
        default=16, ge=1, le=1_048_576, description="Examples per optimizer step, across all devices."
    )
    micro_batch_size: int | None = Field(
        default=None, ge=1, le=65_536, description="Examples per device per forward pass; chosen by the plan if unset."
    )
    learning_rate: float = Field(default=1e-4, gt=0, le=1, description="Peak learning rate.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps to run (or set epochs).")
    epochs: float | None = Field(default=None, gt=0, le=10_000, description="Passes over the data (or set max_steps).")
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="Seed for weights init, data order and dropout.")
    precision: Precision = Field(default="auto", description="Compute precision; 'auto' lets the plan choose.")
    lr_scheduler: Scheduler = Field(default="cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(default=0.0, ge=0, le=1, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, ge=0, description="Gradient clipping norm; 0 disables it.")
    logging_steps: int = Field(default=5, ge=1, description="Log the loss every N optimizer steps.")
    save_steps: int = Field(default=500, ge=1, description="Write a checkpoint every N optimizer steps.")
    save_total_limit: int = Field(default=2, ge=0, description="Keep at most N checkpoints; 0 keeps all.")
    gradient_checkpointing: bool | None = Field(
        default=None, description="Recompute activations in the backward pass; unset lets the plan choose."
    )
    strategy: Strategy = Field(
        default="auto", description="Data parallelism and sharding; 'auto' lets the plan choose."
    )
    offload: Offload = Field(default="auto", description="What moves to host memory; 'auto' lets the plan choose.")
    optimizer: Optimizer = Field(default="adamw", description="AdamW with fp32 moments, or bitsandbytes' 8-bit ones.")

    @model_validator(mode="after")
    def _one_length(self) -> TrainSection:
        if self.max_steps is None and self.epochs is None:
            raise rule_error("say how long to train", "set train.max_steps = N or train.epochs = N")
        if self.max_steps is not None and self.epochs is not None:
            raise rule_error("max_steps and epochs are both set", "keep one of train.max_steps and train.epochs")
        return self


class LoraSection(Section):
    rank: int = Field(default=8, ge=1, le=4096, description="Rank of the low-rank update.")
    alpha: float = Field(default=16, gt=0, description="Scale numerator: the update is scaled by alpha / rank.")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    target: str | list[str] = Field(
        default="all", description="'all' for every linear layer but the head, or a list of module names."
    )
    use_dora: bool = Field(
        default=False, description="DoRA: a trained magnitude per output row on top of the low-rank direction."
    )
    use_rslora: bool = Field(default=False, description="rsLoRA: scale the update by alpha / sqrt(rank), not / rank.")
    plus_lr_ratio: float | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="LoRA+: learning rate of the B matrices as a multiple of train.learning_rate (e.g. 16).",
    )
    init: LoraInit = Field(
        default="default",
        description="Adapter initialisation: default (B = 0), gaussian, pissa (principal singular vectors), "
        "pissa_fast (PiSSA by 16 fast-SVD iterations), olora (QR), loftq (qlora 4-bit: the adapter starts as "
        "the quantization error's low-rank part).",
    )


class QuantizationSection(Section):
    bits: Literal[4, 8] | None = Field(
        default=None, description="Weight bits for qlora (bitsandbytes NF4 or int8); unset lets the plan choose."
    )


class FreezeSection(Section):
    trainable_layers: int = Field(
        default=2, ge=0, le=4096, description="How many decoder layers train, counted from the last one."
    )
    trainable_modules: Literal["all"] | list[str] = Field(
        default="all",
        description="Within those layers, the modules that train ('all', or names such as 'mlp', 'self_attn').",
    )
    extra_modules: list[str] = Field(
        default_factory=list,
        description="Modules outside the decoder layers that train too, e.g. 'embed_tokens', 'norm', 'lm_head'.",
    )

    @model_validator(mode="after")
    def _something_trains(self) -> FreezeSection:
        if self.trainable_layers == 0 and not self.extra_modules:
            raise rule_error(
                "nothing would train", "set freeze.trainable_layers >= 1, or name freeze.extra_modules to train"
            )
        return self


class OutputSection(Section):
    dir: str = Field(default="runs/default", min_length=1, description="Run folder (relative to the spec).")


# Values Slurm reads from `#SBATCH` lines, before any shell runs: plain words only, no quoting to rely on.
SLURM_WORD = r"^[A-Za-z0-9_.:+,@=/-]+$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# launch.env values are written into scripts, so names that usually hold a secret are refused there.
SECRET_LIKE = r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL"
# Set per node and per process by the launcher; a fixed value in launch.env would break the rendezvous.
LAUNCHER_OWNED_ENV = frozenset(
    {"MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "NNODES", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"}
)


class LaunchSection(Section):
    secrets: list[str] = Field(
        default=[],
        description="Environment variable names (e.g. HF_TOKEN) passed to the job by name; values are never written.",
    )

    @field_validator("secrets")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        import re

        for name in names:
            if not re.match(ENV_NAME, name):
                raise rule_error(f"{name!r} is not an environment variable name", "use letters, digits and _")
        return names

    env: dict[str, str] = Field(
        default={},
        description="Environment variables set for every training process (NCCL_*/HCCL_* tuning); values are written.",
    )
    rendezvous_timeout_s: int = Field(
        default=900, ge=10, le=86_400, description="Seconds the launcher waits for every node to join the rendezvous."
    )
    collective_timeout_s: int = Field(
        default=1800, ge=10, le=86_400, description="Seconds one collective (all-reduce, ...) may wait before failing."
    )

    @field_validator("env")
    @classmethod
    def _plain_settings(cls, env: dict[str, str]) -> dict[str, str]:
        import re

        for name in env:
            at = f"launch.env.{name}"
            if not re.match(ENV_NAME, name):
                raise rule_error(f"{name!r} is not an environment variable name", "use letters, digits and _", at)
            if re.search(SECRET_LIKE, name, re.IGNORECASE):
                raise rule_error(
                    f"{name} looks like a secret, and env values are written into the run folder",
                    f"list {name} in launch.secrets instead: it is passed by name from your environment",
                    at,
                )
            if name in LAUNCHER_OWNED_ENV:
                raise rule_error(
                    f"{name} is set by ftc's launcher for each node and process",
                    "remove it: the target supplies the rendezvous and ranks",
                    at,
                )
        return env


class SlurmSection(Section):
    partition: str | None = Field(default=None, pattern=SLURM_WORD, description="Partition (queue) to submit to.")
    account: str | None = Field(default=None, pattern=SLURM_WORD, description="Account charged for the job.")
    qos: str | None = Field(default=None, pattern=SLURM_WORD, description="Quality of service.")
    time_limit: str = Field(
        default="04:00:00",
        pattern=r"^(\d+-)?\d+(:\d{1,2}){0,2}$",
        description="Wall-clock limit as Slurm writes it: minutes, HH:MM:SS or D-HH:MM:SS.",
    )
    job_name: str | None = Field(
        default=None, pattern=SLURM_WORD, max_length=128, description="Job name; unset: ftc- and the run folder name."
    )
    gpu_request: Literal["gpus-per-node", "gres"] = Field(
        default="gpus-per-node", description="Ask for GPUs with --gpus-per-node, or with --gres=gpu:N on older sites."
    )
    gpu_type: str | None = Field(
        default=None, pattern=SLURM_WORD, description="GPU type in the request (e.g. h100), where the site names them."
    )
    cpus_per_task: int | None = Field(default=None, ge=1, le=4096, description="CPU cores per node (one task each).")
    memory: str | None = Field(
        default=None, pattern=r"^\d+[KMGT]?$", description="Memory per node, Slurm units: e.g. 200G; 0 means all."
    )
    exclusive: bool = Field(default=False, description="Take whole nodes, shared with no other job.")
    constraint: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.&|\[\]*:()!-]+$", description="Node features required (--constraint)."
    )
    signal_before_limit_s: int = Field(
        default=300,
        ge=0,
        le=65535,
        description="Seconds before the time limit that the job is warned (SIGUSR1) to checkpoint and requeue.",
    )
    requeue: bool = Field(default=True, description="Let Slurm requeue the job after preemption or node failure.")
    smoke_time_limit: str = Field(
        default="00:15:00",
        pattern=r"^(\d+-)?\d+(:\d{1,2}){0,2}$",
        description="Wall-clock limit of the --smoke-steps job, as time_limit.",
    )
    container_image: str | None = Field(
        default=None, min_length=1, description="Run inside this image through pyxis/enroot (srun --container-image)."
    )
    extra_sbatch: list[str] = Field(
        default=[], description="More #SBATCH options, one per entry, written as given (e.g. --mail-type=END)."
    )

    @field_validator("extra_sbatch")
    @classmethod
    def _literal_options(cls, lines: list[str]) -> list[str]:
        import re

        for line in lines:
            if not re.match(r"^--?[A-Za-z][^\s'\"`\\]*$", line):
                raise rule_error(
                    f"{line!r} is not one #SBATCH option", "write one option like --mail-type=END: no spaces or quotes"
                )
            if "$" in line:
                raise rule_error(
                    f"{line!r}: Slurm reads #SBATCH lines before any shell, so $ is not expanded there",
                    "write the literal value",
                )
        return lines


class DockerSection(Section):
    base_image: str = Field(
        default="pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$",
        description="Image the Dockerfile starts FROM; it must have Python 3.11+ and pip.",
    )
    image: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._/:-]*$",
        description="Tag of the image built for the run; unset: ftc- and the run folder name.",
    )
    ftc_requirement: str = Field(
        default="ftc[train]",
        pattern=r"^[^\s'\"`$\\]+$",
        description="What pip installs in the image: a requirement (ftc[train]==0.1.0) or a URL, one word.",
    )
    shm_size: str = Field(
        default="16g", pattern=r"^\d+[bkmg]?$", description="Shared memory for data loader workers, docker units."
    )
    volumes: list[str] = Field(
        default=[], description="More host folders mounted at the same path in the container (read-only)."
    )


# trl 1.16's DPO losses that need no setting beyond beta (exo_pair needs label smoothing; sft is ftx).
DpoLoss = Literal[
    "sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sigmoid_norm",
]  # fmt: skip
# The data format each preference stage trains on (the runtime's loaders read one kind per stage).
PREFERENCE_STAGE_FORMATS = {"rm": "preference", "dpo": "preference", "orpo": "preference", "kto": "kto"}
# [preference] keys and the stages that read them.
PREFERENCE_KEY_STAGES = {
    "beta": ("dpo", "kto", "orpo"),
    "loss_type": ("dpo",),
    "ftx": ("dpo",),
    "desirable_weight": ("kto",),
    "undesirable_weight": ("kto",),
}


class PreferenceSection(Section):
    beta: float = Field(
        default=0.1,
        gt=0,
        le=100,
        description="dpo/kto: β, how far the policy may move from the reference (higher: less); orpo: λ, the "
        "weight of the odds-ratio term beside the SFT loss. Unitless.",
    )
    loss_type: DpoLoss = Field(default="sigmoid", description="dpo: the preference loss (trl's names; sigmoid is DPO).")
    ftx: float = Field(
        default=0.0, ge=0, le=100, description="dpo: weight of an SFT loss on the chosen reply added to it; 0: none."
    )
    desirable_weight: float = Field(
        default=1.0, gt=0, le=100, description="kto: loss weight of desirable examples (raise it when they are fewer)."
    )
    undesirable_weight: float = Field(
        default=1.0, gt=0, le=100, description="kto: loss weight of undesirable examples."
    )


Monitor = Literal["tensorboard", "wandb", "mlflow"]


class MonitorSection(Section):
    report_to: list[Monitor] = Field(
        default=["tensorboard"],
        description="Where the trainer logs live: tensorboard (in the run folder), wandb, mlflow; [] for none. "
        "Keys come from the environment only (WANDB_API_KEY, MLFLOW_TRACKING_URI, ...), never the spec.",
    )
    project: str | None = Field(
        default=None, min_length=1, description="wandb project / mlflow experiment name; unset: the tools' defaults."
    )
    run_name: str | None = Field(
        default=None, min_length=1, description="Run name shown in the monitors; unset: the run folder's name."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, values: object) -> object:
        # A key in the spec would end up in the run folder, in version control and in shared logs.
        for name in values if isinstance(values, dict) else ():
            if any(word in str(name).lower() for word in ("key", "token", "password", "secret")):
                raise rule_error(
                    "credentials never go in the spec",
                    "export them (e.g. WANDB_API_KEY) in the environment and name them in launch.secrets",
                    at=f"monitor.{name}",
                )
        return values


# Built-in reward functions grpo can score replies with (the runtime's registry is ftc.runtime.rewards).
RewardFunction = Literal["length", "format", "distinct"]
# The data formats the rollout stages read prompts from: a conversation without its last reply.
PROMPT_FORMATS = ("alpaca", "sharegpt", "messages")
# [ppo] keys and the stages that read them.
PPO_KEY_STAGES = {
    "reward_model": ("ppo", "grpo"),
    "kl_coef": ("ppo", "grpo"),
    "clip_range": ("ppo", "grpo"),
    "ppo_epochs": ("ppo", "grpo"),
    "max_new_tokens": ("ppo", "grpo"),
    "temperature": ("ppo", "grpo"),
    "gamma": ("ppo",),
    "lam": ("ppo",),
    "clip_range_value": ("ppo",),
    "value_loss_coef": ("ppo",),
    "num_generations": ("grpo",),
    "reward_functions": ("grpo",),
    "target_words": ("grpo",),
    "reply_pattern": ("grpo",),
}


class PpoSection(Section):
    reward_model: str | None = Field(
        default=None,
        min_length=1,
        description="Hub id or local folder of the reward model that scores each reply (the model/ or adapter/ "
        "folder of a train.stage = 'rm' run); relative paths are read from the spec's folder.",
    )
    kl_coef: float = Field(
        default=0.05,
        ge=0,
        le=10,
        description="Weight of the per-token KL penalty to the frozen reference, in reward units per nat; 0: none.",
    )
    clip_range: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Clip of the policy ratio: one update moves a token's probability by at most this fraction.",
    )
    ppo_epochs: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Optimizer updates per rollout batch of train.global_batch_size prompts (grpo: trl's "
        "num_iterations).",
    )
    max_new_tokens: int = Field(
        default=64, ge=1, le=32_768, description="Tokens generated per reply at most, in the rollouts."
    )
    temperature: float = Field(
        default=1.0, gt=0, le=10, description="Sampling temperature of the rollouts (1: the policy's own distribution)."
    )
    gamma: float = Field(default=1.0, ge=0, le=1, description="ppo: discount per generated token in GAE (unitless).")
    lam: float = Field(
        default=0.95, ge=0, le=1, description="ppo: GAE's λ, from 0 (trust the value head) to 1 (sampled returns)."
    )
    clip_range_value: float = Field(
        default=0.2,
        gt=0,
        le=100,
        description="ppo: how far a value estimate may move from its rollout value per update, in reward units.",
    )
    value_loss_coef: float = Field(
        default=0.1, ge=0, le=10, description="ppo: weight of the value head's loss beside the policy loss (unitless)."
    )
    num_generations: int = Field(
        default=8,
        ge=2,
        le=1024,
        description="grpo: replies sampled per prompt, compared within their group; divides train.global_batch_size.",
    )
    reward_functions: list[RewardFunction] = Field(
        default=[],
        description="grpo: built-in rewards summed per reply: length (near target_words), format (matches "
        "reply_pattern), distinct (share of distinct words); each scores 0 to 1.",
    )
    target_words: int = Field(
        default=50, ge=1, le=100_000, description="grpo 'length' reward: the reply length, in words, that scores 1."
    )
    reply_pattern: str | None = Field(
        default=None,
        min_length=1,
        description="grpo 'format' reward: a Python regular expression the whole reply must match to score 1.",
    )

    @field_validator("reply_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        import re

        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return pattern


class Spec(Section):
    # Optional sections default through model_construct: an instance built at import would build
    # every section's validator (~100 ms) before `ftc validate` has read a byte.
    model: ModelSection
    data: DataSection
    train: TrainSection
    lora: LoraSection = Field(default_factory=LoraSection.model_construct)
    quantization: QuantizationSection = Field(default_factory=QuantizationSection.model_construct)
    freeze: FreezeSection = Field(default_factory=FreezeSection.model_construct)
    output: OutputSection = Field(default_factory=OutputSection.model_construct)
    preference: PreferenceSection = Field(default_factory=PreferenceSection.model_construct)
    monitor: MonitorSection = Field(default_factory=MonitorSection.model_construct)
    ppo: PpoSection = Field(default_factory=PpoSection.model_construct)
    launch: LaunchSection = Field(default_factory=LaunchSection.model_construct)
    slurm: SlurmSection = Field(default_factory=SlurmSection.model_construct)
    docker: DockerSection = Field(default_factory=DockerSection.model_construct)

    @model_validator(mode="after")
    def _method_rules(self) -> Spec:
        method, stage = self.train.method, self.train.stage
        if self.data.packing and stage not in ("pt", "sft"):
            raise rule_error(f"packing is for the pt and sft stages, not {stage!r}", "remove it", at="data.packing")
        if self.data.streaming and self.train.max_steps is None:
            raise rule_error(
                "a streamed dataset has no length to count train.epochs in",
                "set train.max_steps instead of train.epochs, or remove data.streaming",
                at="data.streaming",
            )
        # By value, not by presence: a resolved spec (the run folder's) writes every section out.
        if self.freeze != FreezeSection.model_construct() and method != "freeze":
            raise rule_error(
                f"[freeze] is set but train.method is {method!r}", "use method = 'freeze', or remove it", at="freeze"
            )
        if self.quantization.bits is not None and method != "qlora":
            raise rule_error(
                f"quantization.bits = {self.quantization.bits} quantizes the base for qlora, but train.method is "
                f"{method!r}",
                "set train.method = 'qlora', or remove quantization.bits",
                at="quantization.bits",
            )
        if self.model.adapter is not None and stage == "rm":
            raise rule_error(
                "train.stage = 'rm' puts a new score head on the base, so it does not start from model.adapter",
                "merge the adapter first (ftc export) and name the merged folder in model.name_or_path",
                at="model.adapter",
            )
        if self.model.adapter is not None and method in ("lora", "qlora") and self.lora.init != "default":
            raise rule_error(
                f"lora.init = {self.lora.init!r} makes a new adapter, but model.adapter names one to train further",
                "remove lora.init, or model.adapter",
                at="lora.init",
            )
        if self.lora.init == "loftq" and (method != "qlora" or self.quantization.bits == 8):
            raise rule_error(
                "lora.init = 'loftq' corrects a 4-bit quantized base, but "
                + (f"train.method is {method!r}" if method != "qlora" else "quantization.bits is 8"),
                "use it with train.method = 'qlora' and quantization.bits = 4 (or unset)",
                at="lora.init",
            )
        if self.lora.init in ("pissa", "pissa_fast", "olora") and method == "qlora":
            raise rule_error(
                f"lora.init = {self.lora.init!r} starts from the full-precision weights, which qlora quantizes",
                "use method = 'lora' with it, or lora.init = 'default' / 'gaussian'",
                at="lora.init",
            )
        return self

    @model_validator(mode="after")
    def _preference_rules(self) -> Spec:
        stage = self.train.stage
        if stage == "kto" and self.train.micro_batch_size == 1:
            raise rule_error(
                "train.stage = 'kto' estimates its KL term from the other examples of a micro-batch, so it needs 2 "
                "or more",
                "set train.micro_batch_size = 2 or more, or leave it unset for the plan to choose",
                at="train.micro_batch_size",
            )
        wanted = PREFERENCE_STAGE_FORMATS.get(stage)
        if wanted and self.data.streaming:
            raise rule_error(
                f"data.streaming is for the pt and sft stages; train.stage = {stage!r} loads its {wanted} records "
                "first",
                "remove data.streaming",
                at="data.streaming",
            )
        datasets = [("datasets", self.data.datasets), ("eval_datasets", self.data.eval_datasets)]
        for key, listed in datasets if wanted else ():
            for index, dataset in enumerate(listed):
                if dataset.format != wanted:
                    raise rule_error(
                        f"train.stage = {stage!r} trains on {wanted!r} data, not {dataset.format!r}",
                        f"give {wanted!r} records"
                        + (" (prompt, chosen, rejected)" if wanted == "preference" else " (prompt, completion, label)"),
                        at=f"data.{key}[{index}].format",
                    )
        for name, readers in PREFERENCE_KEY_STAGES.items():
            # By value, not by presence: a resolved spec (the run folder's) writes every key out.
            if stage not in readers and getattr(self.preference, name) != PreferenceSection.model_fields[name].default:
                raise rule_error(
                    f"preference.{name} is read by {', '.join(readers)}, not by {stage!r}",
                    "remove it, or set train.stage to a stage that reads it",
                    at=f"preference.{name}",
                )
        return self

    @model_validator(mode="after")
    def _ppo_rules(self) -> Spec:
        stage, ppo = self.train.stage, self.ppo
        for name, readers in PPO_KEY_STAGES.items():
            # By value, not by presence: a resolved spec (the run folder's) writes every key out.
            if stage not in readers and getattr(ppo, name) != PpoSection.model_fields[name].default:
                raise rule_error(
                    f"ppo.{name} is read by {', '.join(readers)}, not by {stage!r}",
                    "remove it, or set train.stage to a stage that reads it",
                    at=f"ppo.{name}",
                )
        if stage not in ("ppo", "grpo"):
            return self
        data = self.data
        ignored = {"eval_ratio": data.eval_ratio > 0, "eval_datasets": data.eval_datasets, "streaming": data.streaming}
        unread = [key for key, is_set in ignored.items() if is_set]
        if unread:
            raise rule_error(
                f"data.{unread[0]} is set, but train.stage = {stage!r} holds its prompts in memory and evaluates none",
                "remove it",
                at=f"data.{unread[0]}",
            )
        for key, listed in (("datasets", self.data.datasets), ("eval_datasets", self.data.eval_datasets)):
            for index, dataset in enumerate(listed):
                if dataset.format not in PROMPT_FORMATS:
                    raise rule_error(
                        f"train.stage = {stage!r} samples replies to prompts, which {dataset.format!r} data lacks",
                        f"give conversations ({', '.join(PROMPT_FORMATS)}); the last reply of each is left out",
                        at=f"data.{key}[{index}].format",
                    )
        if ppo.max_new_tokens >= self.data.cutoff_len:
            raise rule_error(
                f"ppo.max_new_tokens = {ppo.max_new_tokens} leaves no room for the prompt within "
                f"data.cutoff_len = {self.data.cutoff_len}",
                "lower ppo.max_new_tokens or raise data.cutoff_len",
                at="ppo.max_new_tokens",
            )
        if stage == "ppo" and ppo.reward_model is None:
            raise rule_error(
                "train.stage = 'ppo' scores its rollouts with a reward model, but ppo.reward_model is not set",
                "set ppo.reward_model to a reward model folder (model/ or adapter/ of a train.stage = 'rm' run) "
                "or hub id",
                at="ppo.reward_model",
            )
        if stage == "grpo" and ppo.reward_model is None and not ppo.reward_functions:
            raise rule_error(
                "train.stage = 'grpo' needs rewards: no reward function and no reward model is set",
                'set ppo.reward_functions (e.g. ["length"]) or ppo.reward_model',
                at="ppo.reward_functions",
            )
        if stage == "grpo" and self.train.global_batch_size % ppo.num_generations:
            raise rule_error(
                f"ppo.num_generations = {ppo.num_generations} does not divide train.global_batch_size = "
                f"{self.train.global_batch_size}: each batch holds whole groups of replies to one prompt",
                "choose a num_generations that divides train.global_batch_size",
                at="ppo.num_generations",
            )
        if "format" in ppo.reward_functions and ppo.reply_pattern is None:
            raise rule_error(
                "ppo.reward_functions has 'format', which scores replies against ppo.reply_pattern, unset",
                "set ppo.reply_pattern to a regular expression a good reply matches",
                at="ppo.reply_pattern",
            )
        return self
