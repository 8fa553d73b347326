"""The spec language: one pydantic model per TOML section (`ftc.spec.sections`), assembled into `Spec`
with the rules that span sections.

Every model forbids unknown keys and is strict about types, because a spec is a contract: a
string where a number belongs is a mistake to report, not to coerce. Field descriptions become
the hints and the JSON Schema. Every name of the language is importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import Field, model_validator

from ftc.kernels import KERNELS
from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.quantizers import QUANTIZERS
from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import (
    Attention,
    DataFormat,
    LoraInit,
    Method,
    Offload,
    Optimizer,
    Precision,
    Scheduler,
    Section,
    Stage,
    Strategy,
    rule_error,
)
from ftc.spec.sections.data import FORMAT_FIELDS, DataSection, DatasetSection
from ftc.spec.sections.evaluation import EvalSection
from ftc.spec.sections.launch import (
    ENV_NAME,
    LAUNCHER_OWNED_ENV,
    SECRET_LIKE,
    SLURM_WORD,
    DockerSection,
    LaunchSection,
    SlurmSection,
)
from ftc.spec.sections.model import ModelSection
from ftc.spec.sections.monitor import Monitor, MonitorSection
from ftc.spec.sections.optimizers import ApolloSection, BadamSection, GaloreSection, MuonSection
from ftc.spec.sections.preference import LOSS_KEYS, PreferenceLoss, PreferenceSection
from ftc.spec.sections.rollout import PpoSection, RewardFunction
from ftc.spec.sections.train import (
    FreezeSection,
    LlamaProSection,
    LoraSection,
    OftSection,
    OutputSection,
    QuantizationSection,
    TrainSection,
)
from ftc.spec.sections.vision import VisionSection
from ftc.stages import STAGES, stages_reading

# train.shift_attention's default: a row in quarters, the LongLoRA paper's group size.
SHIFT_GROUPS_PER_ROW = 4
# The sections that configure an optimizer, in the records' order.
OPTIMIZER_SECTIONS = tuple(dict.fromkeys(o.section for o in OPTIMIZERS.values() if o.section))

__all__ = [
    "Attention",
    "DataFormat",
    "DataSection",
    "DatasetSection",
    "DockerSection",
    "EvalSection",
    "ENV_NAME",
    "FORMAT_FIELDS",
    "FreezeSection",
    "LAUNCHER_OWNED_ENV",
    "LaunchSection",
    "LlamaProSection",
    "LoraInit",
    "LoraSection",
    "Method",
    "ModelSection",
    "Monitor",
    "MonitorSection",
    "Offload",
    "OftSection",
    "Optimizer",
    "OutputSection",
    "PpoSection",
    "Precision",
    "PreferenceLoss",
    "PreferenceSection",
    "GaloreSection",
    "ApolloSection",
    "BadamSection",
    "MuonSection",
    "QuantizationSection",
    "RewardFunction",
    "SECRET_LIKE",
    "SLURM_WORD",
    "Scheduler",
    "Section",
    "SlurmSection",
    "Spec",
    "Stage",
    "Strategy",
    "TrainSection",
    "rule_error",
]


def _only_for_stages(stage: str, feature: str, key: str, value: Any, takes: Callable[[Any], bool]) -> None:
    """Refuse a feature set (`value` neither None nor False) for a stage whose record does not take it."""
    if value is not None and value is not False and not takes(STAGES[stage]):
        raise rule_error(
            f"{feature} is for the {_listed(name for name, other in STAGES.items() if takes(other))} stages, "
            f"not {stage!r}",
            f"remove {key}",
            at=key,
            code=Code.CONFLICT,
        )


def _kernel_rules(stage: str, kernels: list[str], loss_head: str) -> None:
    """train.kernels for a stage whose trainer applies them; a kernel's loss head only with that kernel listed."""
    _only_for_stages(stage, "train.kernels", "train.kernels", kernels or None, lambda s: s.trainer_kernels)
    owner = next((kernel for kernel in KERNELS.values() if kernel.loss_head == loss_head), None)
    if owner is not None and owner.name not in kernels:
        raise rule_error(
            f"train.loss_head = {loss_head!r} is {owner.library}'s loss, but train.kernels does not list "
            f"{owner.name!r}",
            f"add {owner.name!r} to train.kernels, or remove train.loss_head",
            at="train.loss_head",
            code=Code.CONFLICT,
        )


class Spec(Section):
    # Optional sections default through model_construct: an instance built at import would build
    # every section's validator (~100 ms) before `ftc validate` has read a byte.
    model: ModelSection
    data: DataSection
    train: TrainSection
    lora: LoraSection = Field(default_factory=LoraSection.model_construct)
    oft: OftSection = Field(default_factory=OftSection.model_construct)
    quantization: QuantizationSection = Field(default_factory=QuantizationSection.model_construct)
    freeze: FreezeSection = Field(default_factory=FreezeSection.model_construct)
    galore: GaloreSection = Field(default_factory=GaloreSection.model_construct)
    apollo: ApolloSection = Field(default_factory=ApolloSection.model_construct)
    badam: BadamSection = Field(default_factory=BadamSection.model_construct)
    muon: MuonSection = Field(default_factory=MuonSection.model_construct)
    llama_pro: LlamaProSection = Field(default_factory=LlamaProSection.model_construct)
    vision: VisionSection = Field(default_factory=VisionSection.model_construct)
    output: OutputSection = Field(default_factory=OutputSection.model_construct)
    preference: PreferenceSection = Field(default_factory=PreferenceSection.model_construct)
    monitor: MonitorSection = Field(default_factory=MonitorSection.model_construct)
    eval: EvalSection = Field(default_factory=EvalSection.model_construct)
    ppo: PpoSection = Field(default_factory=PpoSection.model_construct)
    launch: LaunchSection = Field(default_factory=LaunchSection.model_construct)
    slurm: SlurmSection = Field(default_factory=SlurmSection.model_construct)
    docker: DockerSection = Field(default_factory=DockerSection.model_construct)

    @property
    def adapter_section(self) -> LoraSection | OftSection | None:
        """The section that shapes the adapter train.method trains ([lora], [oft]); None for full and freeze."""
        name = METHODS[self.train.method].adapter
        return getattr(self, name) if name else None

    @model_validator(mode="after")
    def _method_rules(self) -> Spec:
        method, stage = self.train.method, self.train.stage
        trains, record = METHODS[method], STAGES[stage]
        if method not in record.methods:
            raise rule_error(
                f"train.stage = {stage!r} does not run with train.method = {method!r}",
                f"use one of: {', '.join(record.methods)}",
                at="train.method",
                code=Code.CONFLICT,
            )
        if self.train.loss_head != "auto" and self.train.loss_head not in record.loss_heads:
            raise rule_error(
                f"train.stage = {stage!r} computes its loss only through "
                + " or ".join(f"the {head!r} head" for head in record.loss_heads),
                f"remove train.loss_head, or set it to {record.loss_heads[0]!r}",
                at="train.loss_head",
                code=Code.CONFLICT,
            )
        _kernel_rules(stage, self.train.kernels, self.train.loss_head)
        _only_for_stages(stage, "NEFTune", "train.neftune_alpha", self.train.neftune_alpha, lambda s: s.embedding_noise)
        _only_for_stages(stage, "packing", "data.packing", self.data.packing, lambda s: s.packs)
        # a score head ranks replies; the benchmarks score the answer letters with the language-model head
        _only_for_stages(stage, "eval.tasks", "eval.tasks", self.eval.tasks or None, lambda s: not s.score_head)
        if self.data.streaming and self.train.max_steps is None:
            raise rule_error(
                "a streamed dataset has no length to count train.epochs in",
                "set train.max_steps instead of train.epochs, or remove data.streaming",
                at="data.streaming",
                code=Code.CONFLICT,
            )
        # By value, not by presence: a resolved spec (the run folder's) writes every section out.
        if self.freeze != FreezeSection.model_construct() and not trains.trains_chosen_layers:
            raise rule_error(
                f"[freeze] is set but train.method is {method!r}",
                "use method = 'freeze', or remove it",
                at="freeze",
                code=Code.CONFLICT,
            )
        adapter = self.adapter_section
        # [lora] beside full or freeze is left alone, as it always was; beside another adapter it would be ignored.
        if self.oft != OftSection.model_construct() and adapter is not self.oft:
            raise rule_error(
                f"[oft] is set but train.method is {method!r}",
                "use method = 'oft', or remove it",
                at="oft",
                code=Code.CONFLICT,
            )
        if adapter is not None and adapter is not self.lora and self.lora != LoraSection.model_construct():
            raise rule_error(
                f"[lora] is set but train.method = {method!r} trains the adapter [{trains.adapter}] shapes",
                "remove [lora], or use method = 'lora'",
                at="lora",
                code=Code.CONFLICT,
            )
        if self.model.adapter is not None and trains.has_adapter and not trains.continues_adapter:
            raise rule_error(
                f"train.method = {method!r} trains a new adapter; it does not train model.adapter further",
                "merge the adapter first (ftc export) and name the merged folder in model.name_or_path, or use "
                "method = 'lora'",
                at="model.adapter",
                code=Code.CONFLICT,
            )
        quantization_set = [
            key for key, default in QuantizationSection.model_construct() if getattr(self.quantization, key) != default
        ]
        if quantization_set and not trains.quantizes:
            key = quantization_set[0]
            raise rule_error(
                f"quantization.{key} = {getattr(self.quantization, key)!r} says how qlora quantizes the base, but "
                f"train.method is {method!r}",
                f"set train.method = 'qlora', or remove quantization.{key}",
                at=f"quantization.{key}",
                code=Code.CONFLICT,
            )
        if self.model.adapter is not None and record.score_head:
            raise rule_error(
                f"train.stage = {stage!r} puts a new score head on the base, so it does not start from model.adapter",
                "merge the adapter first (ftc export) and name the merged folder in model.name_or_path",
                at="model.adapter",
                code=Code.CONFLICT,
            )
        if self.model.adapter is not None and trains.has_adapter and self.lora.init != "default":
            raise rule_error(
                f"lora.init = {self.lora.init!r} makes a new adapter, but model.adapter names one to train further",
                "remove lora.init, or model.adapter",
                at="lora.init",
                code=Code.CONFLICT,
            )
        loftq_backends = [name for name, quantizer in QUANTIZERS.items() if quantizer.loftq]
        if self.lora.init == "loftq" and (
            not trains.quantizes or self.quantization.bits == 8 or self.quantization.backend not in loftq_backends
        ):
            if not trains.quantizes:
                why = f"train.method is {method!r}"
            elif self.quantization.backend not in loftq_backends:
                why = f"quantization.backend is {self.quantization.backend!r}"
            else:
                why = "quantization.bits is 8"
            raise rule_error(
                f"lora.init = 'loftq' corrects a 4-bit {' or '.join(loftq_backends)} base, but {why}",
                f"use it with train.method = 'qlora', quantization.backend = {loftq_backends[0]!r} and "
                "quantization.bits = 4 (or unset)",
                at="lora.init",
                code=Code.CONFLICT,
            )
        if self.lora.init in ("pissa", "pissa_fast", "olora") and trains.quantizes:
            raise rule_error(
                f"lora.init = {self.lora.init!r} starts from the full-precision weights, which qlora quantizes",
                "use method = 'lora' with it, or lora.init = 'default' / 'gaussian'",
                at="lora.init",
                code=Code.CONFLICT,
            )
        return self

    @property
    def attention_group(self) -> int | None:
        """Tokens per group of train.shift_attention (a quarter of the row unless set); None when it is off."""
        if not self.train.shift_attention:
            return None
        return self.train.shift_group_size or self.data.cutoff_len // SHIFT_GROUPS_PER_ROW

    @model_validator(mode="after")
    def _shift_attention_rules(self) -> Spec:
        train, cutoff = self.train, self.data.cutoff_len
        if train.shift_group_size is not None and not train.shift_attention:
            raise rule_error(
                "train.shift_group_size sizes the groups of train.shift_attention, which is off",
                "set train.shift_attention = true, or remove train.shift_group_size",
                at="train.shift_group_size",
                code=Code.CONFLICT,
            )
        if not train.shift_attention:
            return self
        _only_for_stages(
            train.stage, "shifted sparse attention", "train.shift_attention", True, lambda s: s.shift_attention
        )
        if self.model.attention not in ("auto", "sdpa"):
            raise rule_error(
                f"train.shift_attention computes each group through torch's SDPA, not model.attention = "
                f"{self.model.attention!r}",
                "remove model.attention, or set it to 'sdpa'",
                at="model.attention",
                code=Code.CONFLICT,
            )
        if train.shift_group_size is None:
            if cutoff % (2 * SHIFT_GROUPS_PER_ROW):
                raise rule_error(
                    f"train.shift_attention groups a row in quarters by default, and a quarter of data.cutoff_len = "
                    f"{cutoff} is not an even number of tokens (half the heads shift by half a group)",
                    f"set data.cutoff_len to a multiple of {2 * SHIFT_GROUPS_PER_ROW}, or set train.shift_group_size "
                    "to an even divisor of it",
                    at="train.shift_attention",
                    code=Code.CONFLICT,
                )
            return self
        group, at = train.shift_group_size, "train.shift_group_size"
        if group % 2:
            raise rule_error(
                f"train.shift_group_size = {group} is odd: half of the heads shift their groups by half a group",
                "choose an even group size",
                at=at,
                code=Code.CONFLICT,
            )
        if group >= cutoff:
            raise rule_error(
                f"train.shift_group_size = {group} is not shorter than data.cutoff_len = {cutoff}: one group per row "
                "is full attention",
                f"choose a divisor of {cutoff} below it ({cutoff // SHIFT_GROUPS_PER_ROW} is the paper's quarter), or "
                "remove train.shift_attention",
                at=at,
                code=Code.CONFLICT,
            )
        if cutoff % group:
            raise rule_error(
                f"train.shift_group_size = {group} does not divide data.cutoff_len = {cutoff}: rows are padded to "
                "whole groups, so the longest row must be whole groups too",
                f"choose an even divisor of {cutoff}, or change data.cutoff_len",
                at=at,
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _optimizer_rules(self) -> Spec:
        name, train = self.train.optimizer, self.train
        optimizer = OPTIMIZERS[name]
        if train.method not in optimizer.methods:
            raise rule_error(
                f"train.optimizer = {name!r} {optimizer.methods_why}, so it does not run with train.method = "
                f"{train.method!r}",
                f"use train.method = {_either(optimizer.methods)}, or another optimizer",
                at="train.optimizer",
                code=Code.CONFLICT,
            )
        if train.strategy != "auto" and train.strategy not in optimizer.strategies:
            raise rule_error(
                f"train.optimizer = {name!r} {optimizer.strategies_why}, so it does not run under train.strategy = "
                f"{train.strategy!r}",
                f"use train.strategy = {_either(optimizer.strategies)} (or 'auto'), or another optimizer",
                at="train.strategy",
                code=Code.CONFLICT,
            )
        if optimizer.whole_weights_only and train.offload not in ("auto", "none"):
            raise rule_error(
                f"train.optimizer = {name!r} steps on the device: offloading is DeepSpeed's, which it does not run "
                "under",
                "remove train.offload, or use adamw",
                at="train.offload",
                code=Code.CONFLICT,
            )
        # By value, not by presence: a resolved spec (the run folder's) writes every section out.
        for section in OPTIMIZER_SECTIONS:
            if (
                getattr(self, section) != type(getattr(self, section)).model_construct()
                and optimizer.section != section
            ):
                users = _either(other.name for other in OPTIMIZERS.values() if other.section == section)
                raise rule_error(
                    f"[{section}] is set but train.optimizer is {name!r}",
                    f"set train.optimizer = {users}, or remove [{section}]",
                    at=section,
                    code=Code.CONFLICT,
                )
        if self.badam.mode == "ratio":
            # Found by running it: transformers 5's Trainer takes the gradients' norm every step (for its log,
            # clipping or not), and torch has no norm of the sparse gradients ratio mode leaves.
            raise rule_error(
                "badam.mode = 'ratio' leaves sparse gradients, and the trainer measures every step's gradient norm, "
                "which torch cannot take of sparse tensors",
                "use badam.mode = 'layer'",
                at="badam.mode",
                code=Code.CONFLICT,
            )
        layerwise = optimizer.section in ("galore", "apollo") and getattr(self, optimizer.section).layerwise
        if layerwise and train.micro_batch_size is not None and train.micro_batch_size != train.global_batch_size:
            raise rule_error(
                f"{optimizer.section}.layerwise steps each weight inside the backward, so every micro-batch is a "
                "whole optimizer step: it cannot accumulate gradients",
                f"set train.micro_batch_size = train.global_batch_size ({train.global_batch_size}), or remove "
                f"{optimizer.section}.layerwise",
                at=f"{optimizer.section}.layerwise",
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _pure_bf16_rules(self) -> Spec:
        """train.pure_bf16 holds trained base weights in bf16: a method that trains them, in bf16, on replicas."""
        train, key = self.train, "train.pure_bf16"
        if not train.pure_bf16:
            return self
        method = METHODS[train.method]
        if not (method.trains_all_weights or method.trains_chosen_layers):
            takers = [name for name, m in METHODS.items() if m.trains_all_weights or m.trains_chosen_layers]
            raise rule_error(
                f"train.pure_bf16 holds the trained base weights in bf16, but train.method = '{train.method}' "
                "trains no base weights",
                f"use train.method = {_either(takers)}, or remove train.pure_bf16",
                at=key,
                code=Code.CONFLICT,
            )
        if train.precision not in ("auto", "bf16"):
            raise rule_error(
                f"train.pure_bf16 computes in the bf16 it holds, but train.precision = '{train.precision}'",
                "set train.precision = 'bf16' (or 'auto'), or remove train.pure_bf16",
                at=key,
                code=Code.CONFLICT,
            )
        if train.strategy not in ("auto", "single", "ddp"):
            raise rule_error(
                f"train.pure_bf16 keeps no fp32 copy, but train.strategy = '{train.strategy}' is "
                f"{'FSDP' if train.strategy == 'fsdp' else 'DeepSpeed'}'s mixed precision, which keeps its own fp32 "
                "master copy of the weights",
                "use train.strategy = 'single' or 'ddp' (or 'auto'), or remove train.pure_bf16",
                at=key,
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _image_keys_need_a_stage_that_takes_images(self) -> Spec:
        """The keys of image+text training, set for a stage whose record says it cannot train on images."""
        stage, record = self.train.stage, STAGES[self.train.stage]
        if record.takes_images:
            return self
        keys = ("media_dir", "image_max_pixels", "image_min_pixels")
        set_here = [f"data.{key}" for key in keys if getattr(self.data, key) is not None]
        # A value other than its default: a resolved spec (a run folder's spec.toml) writes every key, defaults too.
        changed = [
            key for key, field in type(self.vision).model_fields.items() if getattr(self.vision, key) != field.default
        ]
        set_here += [f"vision.{key}" for key in changed]
        if set_here:
            able = " or ".join(repr(name) for name, other in STAGES.items() if other.takes_images)
            raise rule_error(
                f"{set_here[0]} is for training on images, and train.stage = {stage!r} cannot train on images: "
                f"{record.no_images_why}",
                f"remove {set_here[0]}, or train on the images with train.stage = {able}",
                at=set_here[0],
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _projector_only_needs_a_method_that_trains_weights_whole(self) -> Spec:
        """[vision] projector_only freezes the language model: an adapter or a layer choice for it contradicts that."""
        method = METHODS[self.train.method]
        if self.vision.projector_only and not method.trains_all_weights:
            whole = " or ".join(repr(name) for name, record in METHODS.items() if record.trains_all_weights)
            raise rule_error(
                f"projector_only trains the projector alone, but train.method = '{self.train.method}' trains the "
                "language model's layers too",
                f"set train.method = {whole}: under projector_only it updates the projector and nothing else",
                at="vision.projector_only",
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _llama_pro_rules(self) -> Spec:
        """[llama_pro]'s copies are what trains: methods, stages and keys that would train something else are refused.

        Whether the count divides the base's blocks, and whether its family can be expanded, the planner says,
        where the shapes are known (`ftc.compiler.block_expansion`)."""
        if self.llama_pro.added_layers is None:
            return self
        method, stage, key = METHODS[self.train.method], self.train.stage, "llama_pro.added_layers"
        if method.block_expansion_refused:
            takes = [name for name, other in METHODS.items() if not other.block_expansion_refused]
            raise rule_error(
                f"train.method = {self.train.method!r} {method.block_expansion_refused}",
                f"use train.method = {' or '.join(map(repr, takes))} with [llama_pro], or remove it",
                at=key,
                code=Code.CONFLICT,
            )
        if STAGES[stage].score_head:
            raise rule_error(
                f"train.stage = {stage!r} saves a reward model that ppo.reward_model loads on the base as published, "
                "which lacks the added blocks",
                "remove [llama_pro]; to score with an expanded model, expand it in a pt or sft run, export it "
                "(ftc export) and train the reward model on the exported folder",
                at=key,
                code=Code.CONFLICT,
            )
        if self.freeze.trainable_layers is not None:
            raise rule_error(
                "freeze.trainable_layers picks the last blocks to train, but under [llama_pro] the added blocks are "
                "what trains",
                "remove freeze.trainable_layers (freeze.trainable_modules and extra_modules still apply)",
                at="freeze.trainable_layers",
                code=Code.CONFLICT,
            )
        if self.model.adapter is not None and method.has_adapter:
            raise rule_error(
                "model.adapter numbers its blocks as the base does, and [llama_pro] inserts new blocks among them",
                "merge the adapter first (ftc export) and name the merged folder in model.name_or_path, or remove "
                "[llama_pro]",
                at="model.adapter",
                code=Code.CONFLICT,
            )
        return self

    @model_validator(mode="after")
    def _preference_rules(self) -> Spec:
        stage, record = self.train.stage, STAGES[self.train.stage]
        micro, least = self.train.micro_batch_size, record.least_micro_batch
        if micro is not None and micro < least:
            raise rule_error(
                f"train.stage = {stage!r} {record.least_micro_batch_why}, so it needs {least} or more",
                f"set train.micro_batch_size = {least} or more, or leave it unset for the plan to choose",
                at="train.micro_batch_size",
                code=Code.CONFLICT,
            )
        # A stage of judged replies reads the one format of its kind, and loads its records whole.
        wanted = record.formats[0] if record.judged else None
        if wanted and self.data.streaming:
            raise rule_error(
                f"data.streaming is for the {_listed(name for name, other in STAGES.items() if other.streams)} "
                f"stages; train.stage = {stage!r} loads its {wanted} records first",
                "remove data.streaming",
                at="data.streaming",
                code=Code.CONFLICT,
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
                        code=Code.CONFLICT,
                    )
        for name, field in PreferenceSection.model_fields.items():
            readers = stages_reading(f"preference.{name}")
            # By value, not by presence: a resolved spec (the run folder's) writes every key out.
            if stage not in readers and getattr(self.preference, name) != field.default:
                raise rule_error(
                    f"preference.{name} is read by {', '.join(readers)}, not by {stage!r}",
                    "remove it, or set train.stage to a stage that reads it",
                    at=f"preference.{name}",
                    code=Code.CONFLICT,
                )
        loss = self.preference.loss_type
        if "preference.loss_type" in record.reads and loss not in record.loss_types:
            runs = [name for name, other in STAGES.items() if loss in other.loss_types]
            raise rule_error(
                f"preference.loss_type = {loss!r} is not a loss train.stage = {stage!r} runs",
                f"one of: {', '.join(record.loss_types)}; or set train.stage = {runs[0]!r}, which runs it",
                at="preference.loss_type",
                code=Code.CONFLICT,
            )
        for name, losses in LOSS_KEYS.items():
            # trl reads the key under these loss types alone: a value set for another would be dropped unseen.
            if getattr(self.preference, name) != PreferenceSection.model_fields[name].default and loss not in losses:
                raise rule_error(
                    f"preference.{name} is read with loss_type = {_listed(repr(each) for each in losses)}, "
                    f"not {loss!r}",
                    f"remove it, or set preference.loss_type = {losses[0]!r}",
                    at=f"preference.{name}",
                    code=Code.CONFLICT,
                )
        return self

    @model_validator(mode="after")
    def _ppo_rules(self) -> Spec:
        stage, record, ppo = self.train.stage, STAGES[self.train.stage], self.ppo
        for name, field in PpoSection.model_fields.items():
            readers = stages_reading(f"ppo.{name}")
            # By value, not by presence: a resolved spec (the run folder's) writes every key out.
            if stage not in readers and getattr(ppo, name) != field.default:
                raise rule_error(
                    f"ppo.{name} is read by {', '.join(readers)}, not by {stage!r}",
                    "remove it, or set train.stage to a stage that reads it",
                    at=f"ppo.{name}",
                    code=Code.CONFLICT,
                )
        if record.samples is None:
            return self
        data = self.data
        ignored = {"eval_ratio": data.eval_ratio > 0, "eval_datasets": data.eval_datasets, "streaming": data.streaming}
        unread = [key for key, is_set in ignored.items() if is_set]
        if unread:
            raise rule_error(
                f"data.{unread[0]} is set, but train.stage = {stage!r} holds its prompts in memory and evaluates none",
                "remove it",
                at=f"data.{unread[0]}",
                code=Code.CONFLICT,
            )
        for key, listed in (("datasets", self.data.datasets), ("eval_datasets", self.data.eval_datasets)):
            for index, dataset in enumerate(listed):
                if dataset.format not in record.formats:
                    raise rule_error(
                        f"train.stage = {stage!r} samples replies to prompts, which {dataset.format!r} data lacks",
                        f"give conversations ({', '.join(record.formats)}); the last reply of each is left out",
                        at=f"data.{key}[{index}].format",
                        code=Code.CONFLICT,
                    )
        if ppo.max_new_tokens >= self.data.cutoff_len:
            raise rule_error(
                f"ppo.max_new_tokens = {ppo.max_new_tokens} leaves no room for the prompt within "
                f"data.cutoff_len = {self.data.cutoff_len}",
                "lower ppo.max_new_tokens or raise data.cutoff_len",
                at="ppo.max_new_tokens",
                code=Code.CONFLICT,
            )
        if record.reward_model == "needed" and ppo.reward_model is None:
            raise rule_error(
                f"train.stage = {stage!r} scores its rollouts with a reward model, but ppo.reward_model is not set",
                "set ppo.reward_model to a reward model folder (model/ or adapter/ of a train.stage = 'rm' run) "
                "or hub id",
                at="ppo.reward_model",
                code=Code.MISSING,
            )
        if record.reward_model == "optional" and ppo.reward_model is None and not ppo.reward_functions:
            raise rule_error(
                f"train.stage = {stage!r} needs rewards: no reward function and no reward model is set",
                'set ppo.reward_functions (e.g. ["length"]) or ppo.reward_model',
                at="ppo.reward_functions",
                code=Code.MISSING,
            )
        if "ppo.num_generations" in record.reads and self.train.global_batch_size % ppo.num_generations:
            raise rule_error(
                f"ppo.num_generations = {ppo.num_generations} does not divide train.global_batch_size = "
                f"{self.train.global_batch_size}: each batch holds whole groups of replies to one prompt",
                "choose a num_generations that divides train.global_batch_size",
                at="ppo.num_generations",
                code=Code.CONFLICT,
            )
        if "format" in ppo.reward_functions and ppo.reply_pattern is None:
            raise rule_error(
                "ppo.reward_functions has 'format', which scores replies against ppo.reply_pattern, unset",
                "set ppo.reply_pattern to a regular expression a good reply matches",
                at="ppo.reply_pattern",
                code=Code.MISSING,
            )
        return self


def _either(names: Iterable[str]) -> str:
    """Values to choose from, quoted as the spec writes them: "'a'", "'a' or 'b'", "'a', 'b' or 'c'"."""
    *most, last = (repr(name) for name in names)
    return f"{', '.join(most)} or {last}" if most else last


def _listed(names: Iterable[str]) -> str:
    """Names as a sentence lists them: "pt", "pt and sft", "dpo, kto and orpo"."""
    *most, last = names
    return f"{', '.join(most)} and {last}" if most else last
