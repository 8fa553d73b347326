"""Axolotl's YAML config (`axolotl train FILE.yml`), key by key into an ftc spec."""

from __future__ import annotations

from typing import Any

from ftc.importers.common import batch, deepspeed
from ftc.importers.core import Import, Rule, UnmappableValue, boolean, names, number, one_of, run_rules, text, whole

TOOL = "Axolotl"
_TEMPLATES = {"llama3": "llama3", "chatml": "chatml", "gemma": "gemma", "mistral": "mistral", "phi_3": "phi3"}
_TEMPLATES |= {"qwen_25": "qwen", "llama2": "llama2", "deepseek_v3": "deepseek3"}
_RL = {"dpo": "dpo", "ipo": "dpo", "orpo": "orpo", "kto": "kto", "simpo": "cpo", "grpo": "grpo"}
_SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant"}
_SCHEDULERS |= {"constant_with_warmup": "constant_with_warmup", "one_cycle": None, "rex": None}
_OPTIMIZERS = {"adamw_torch": "adamw", "adamw_torch_fused": "adamw", "adamw_bnb_8bit": "adamw_8bit"}
_OPTIMIZERS |= {"adamw_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit", "adam_mini": "adam_mini"}
_OPTIMIZERS |= {"muon": "muon", "galore_adamw": "galore_adamw", "galore_adamw_8bit": "galore_adamw_8bit"}
_OPTIMIZERS |= {"apollo_adamw": "apollo_adamw", "lion_8bit": None, "adafactor": None, "schedule_free_adamw": None}
# Axolotl's conversation dataset types → ftc's format and column mapping for the fields a record names its way.
_SFT_TYPES = {"alpaca": ("alpaca", {}), "sharegpt": ("sharegpt", {}), "chat_template": ("messages", {})}
_SFT_TYPES |= {"completion": ("text", {}), "pretrain": ("text", {})}
# Preference prompt strategies: the prefix (chatml., llama3.) is the template, the rest names the fields.
_PAIR_FIELDS = {
    "intel": {"instruction": "question"},
    "argilla": {"instruction": "instruction", "chosen": "chosen_response", "rejected": "rejected_response"},
    "prompt_pairs": {"instruction": "prompt"},
    "icr": {"instruction": "input"},
    "default": {},
}


def _adapter(job: Import, value: Any) -> None:
    job.set("train.method", one_of({"lora": "lora", "qlora": "qlora"}, "adapter")(value))


def _bits(bits: int):
    def apply(job: Import, value: Any) -> None:
        if not boolean(value):
            return
        if job.lookup("train.method") not in ("lora", "qlora"):
            raise UnmappableValue("ftc quantizes the base for LoRA only", "set adapter: qlora")
        job.set("train.method", "qlora")
        job.set("quantization.bits", bits)

    return apply


def _rl(job: Import, value: Any) -> None:
    kind = text(value).lower()
    job.set("train.stage", one_of(_RL, "rl")(kind))
    if kind == "ipo":
        job.set("preference.loss_type", "ipo")
    if kind == "simpo":
        job.set("preference.loss_type", "simpo")


def _datasets(list_key: str):
    def apply(job: Import, value: Any) -> None:
        if not isinstance(value, list) or not value:
            raise UnmappableValue("expected a list of datasets, each with path and type", "see Axolotl's docs")
        job.set(f"data.{list_key}", [_dataset(job, entry) for entry in value])

    return apply


def _dataset(job: Import, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise UnmappableValue(f"a dataset entry needs a path, found {entry!r}", "give path and type")
    table: dict[str, Any] = {"path": entry["path"]}
    kind = entry.get("type", "alpaca")
    if not isinstance(kind, str):
        raise UnmappableValue(f"dataset {entry['path']}: a custom type object has no equivalent", "use a named type")
    stage = job.lookup("train.stage", "sft")
    columns: dict[str, str] = {}
    if stage in ("dpo", "orpo", "cpo"):
        strategy = kind.split(".", 1)[-1]
        if strategy not in _PAIR_FIELDS:
            raise UnmappableValue(
                f"dataset {entry['path']}: type {kind!r} has no equivalent",
                f"use a type ending in: {', '.join(_PAIR_FIELDS)}",
            )
        table["format"], columns = "preference", dict(_PAIR_FIELDS[strategy])
    elif stage == "kto":
        table["format"] = "kto"
    elif kind in _SFT_TYPES:
        table["format"], columns = _SFT_TYPES[kind][0], dict(_SFT_TYPES[kind][1])
        if kind == "chat_template" and entry.get("field_messages", "messages") != "messages":
            columns["messages"] = text(entry["field_messages"])
        if table["format"] == "text" and entry.get("field", "text") != "text":
            columns["text"] = text(entry["field"])
    else:
        raise UnmappableValue(
            f"dataset {entry['path']}: type {kind!r} has no equivalent", f"use one of: {', '.join(_SFT_TYPES)}"
        )
    if stage == "pt" or (job.lookup("train.stage") is None and table["format"] == "text"):
        job.set("train.stage", "pt")
    for key in ("split", "revision"):
        if isinstance(entry.get(key), str):
            table[key] = entry[key]
    columns = {ours: theirs for ours, theirs in columns.items() if ours != theirs}
    if columns:
        table["columns"] = columns
    return table


def _template(job: Import, value: Any) -> None:
    name = text(value)
    if name in _TEMPLATES:
        job.set("model.template", _TEMPLATES[name])
    else:
        job.leave_out("chat_template", f"ftc has no template {name!r}; model.template = 'auto' uses the tokenizer's")


def _rope_scaling(job: Import, value: Any) -> None:
    if not isinstance(value, dict):
        raise UnmappableValue("expected {type, factor}", "write rope_scaling: {type: linear, factor: 2.0}")
    kind = value.get("rope_type", value.get("type"))
    scaling = one_of({name: name for name in ("linear", "dynamic", "yarn", "llama3")}, "rope type")(kind)
    job.set("model.rope_scaling", {"type": scaling, "factor": number(value.get("factor"))})


def _bf16(job: Import, value: Any) -> None:
    if value == "auto":
        job.set("train.precision", "auto")
    elif boolean(value):
        job.set("train.precision", "bf16")


def _fsdp(job: Import, value: Any) -> None:
    if value:
        job.set("train.strategy", "fsdp")


def _fsdp_config(job: Import, value: Any) -> None:
    if not isinstance(value, dict):
        raise UnmappableValue("expected a mapping of FSDP settings", "see Axolotl's FSDP docs")
    offload = value.get("fsdp_offload_params", value.get("offload_params"))
    if offload is not None and boolean(offload):
        job.set("train.offload", "optimizer+params")
    job.set("train.strategy", "fsdp")
    rest = sorted(set(value) - {"fsdp_offload_params", "offload_params"})
    if rest:
        job.unmapped.append(("fsdp_config", ", ".join(rest), "ftc writes FSDP's wrapping and state settings itself"))


def _wandb(job: Import, value: Any) -> None:
    job.set("monitor.report_to", ["wandb"])
    job.set("monitor.project", text(value))


def _val_set_size(job: Import, value: Any) -> None:
    size = number(value)
    if size >= 1:
        raise UnmappableValue("ftc holds out a fraction (data.eval_ratio), not a count", "write a fraction below 1")
    if size > 0:
        job.set("data.eval_ratio", size)


_CACHE = "ftc prepares and caches the data itself (data.cache)"

RULES: tuple[Rule, ...] = (
    Rule("rl", apply=_rl),
    Rule("adapter", apply=_adapter),
    Rule("base_model", to="model.name_or_path", convert=text),
    Rule("base_model_config", why="ftc reads the config beside the weights"),
    Rule("model_type", why="transformers' Auto classes pick the class from the config"),
    Rule("tokenizer_type", why="transformers' Auto classes pick the tokenizer"),
    Rule("trust_remote_code", to="model.trust_remote_code", convert=boolean),
    Rule("chat_template", apply=_template),
    Rule("lora_model_dir", to="model.adapter", convert=text),
    Rule("load_in_4bit", apply=_bits(4)),
    Rule("load_in_8bit", apply=_bits(8)),
    Rule("lora_r", to="lora.rank", convert=whole),
    Rule("lora_alpha", to="lora.alpha", convert=number),
    Rule("lora_dropout", to="lora.dropout", convert=number),
    Rule("lora_target_linear", apply=lambda job, v: boolean(v) and job.set("lora.target", "all")),
    Rule("lora_target_modules", apply=lambda job, v: job.lookup("lora.target") or job.set("lora.target", names(v))),
    Rule("lora_modules_to_save", why="ftc's LoRA trains adapters only; use method full or freeze for whole modules"),
    Rule("peft_use_dora", to="lora.use_dora", convert=boolean),
    Rule("peft_use_rslora", to="lora.use_rslora", convert=boolean),
    Rule("loraplus_lr_ratio", to="lora.plus_lr_ratio", convert=number),
    Rule("datasets", apply=_datasets("datasets")),
    Rule("test_datasets", apply=_datasets("eval_datasets")),
    Rule("dataset_prepared_path", why=_CACHE),
    Rule("val_set_size", apply=_val_set_size),
    Rule("sequence_len", to="data.cutoff_len", convert=whole),
    Rule("sample_packing", to="data.packing", convert=boolean),
    Rule("pad_to_sequence_len", why="ftc pads each batch to its longest row"),
    Rule("eval_sample_packing", why="ftc evaluates unpacked rows"),
    Rule("train_on_inputs", why="ftc's sft learns from the assistant's replies only"),
    Rule("output_dir", to="output.dir", convert=text),
    Rule("micro_batch_size", apply=lambda job, _: batch(job, "micro_batch_size", "gradient_accumulation_steps")),
    Rule("gradient_accumulation_steps", consumed=True),
    Rule("eval_batch_size", why="ftc evaluates at the training micro-batch"),
    Rule("num_epochs", to="train.epochs", convert=number),
    Rule("max_steps", to="train.max_steps", convert=whole),
    Rule("optimizer", to="train.optimizer", convert=one_of(_OPTIMIZERS, "optimizer")),
    Rule("lr_scheduler", to="train.lr_scheduler", convert=one_of(_SCHEDULERS, "lr_scheduler")),
    Rule("learning_rate", to="train.learning_rate", convert=number),
    Rule("warmup_ratio", to="train.warmup_ratio", convert=number),
    Rule("warmup_steps", why="ftc warms up for a ratio of the steps; give warmup_ratio"),
    Rule("weight_decay", to="train.weight_decay", convert=number),
    Rule("max_grad_norm", to="train.max_grad_norm", convert=number),
    Rule("seed", to="train.seed", convert=whole),
    Rule("logging_steps", to="train.logging_steps", convert=whole),
    Rule("save_steps", to="train.save_steps", convert=whole),
    Rule("save_total_limit", to="train.save_total_limit", convert=whole),
    Rule("saves_per_epoch", why="ftc checkpoints every train.save_steps"),
    Rule("evals_per_epoch", why="ftc has no evaluation schedule key"),
    Rule("eval_steps", why="ftc has no evaluation schedule key"),
    Rule("bf16", apply=_bf16),
    Rule("fp16", apply=lambda job, v: boolean(v) and job.set("train.precision", "fp16")),
    Rule("tf32", why="the plan sets the matmul precision for the hardware"),
    Rule("flash_attention", apply=lambda job, v: boolean(v) and job.set("model.attention", "flash")),
    Rule("sdp_attention", apply=lambda job, v: boolean(v) and job.set("model.attention", "sdpa")),
    Rule("xformers_attention", why="ftc's attention kernels are eager, sdpa and flash"),
    Rule("gradient_checkpointing", to="train.gradient_checkpointing", convert=boolean),
    Rule("deepspeed", apply=lambda job, v: deepspeed(job, "deepspeed", v)),
    Rule("fsdp", apply=_fsdp),
    Rule("fsdp_config", apply=_fsdp_config),
    Rule("neftune_noise_alpha", to="train.neftune_alpha", convert=number),
    Rule("rope_scaling", apply=_rope_scaling),
    Rule("rl_beta", to="preference.beta", convert=number),
    Rule("dpo_beta", to="preference.beta", convert=number),
    Rule("orpo_alpha", to="preference.beta", convert=number),
    Rule("simpo_gamma", to="preference.simpo_gamma", convert=number),
    Rule("kto_desirable_weight", to="preference.desirable_weight", convert=number),
    Rule("kto_undesirable_weight", to="preference.undesirable_weight", convert=number),
    Rule("wandb_project", apply=_wandb),
    Rule("wandb_name", to="monitor.run_name", convert=text),
    Rule("wandb_entity", why="wandb reads its entity from its own settings (WANDB_ENTITY via launch.env)"),
    Rule("wandb_watch", why="ftc does not log gradients to wandb"),
    Rule("wandb_log_model", why="ftc keeps checkpoints in the run folder"),
    Rule("special_tokens", why="ftc uses the tokenizer's special tokens as saved"),
    Rule("strict", why="ftc's spec is always strict"),
    Rule("resume_from_checkpoint", why="resume with ftc launch --resume"),
    Rule("early_stopping_patience", why="ftc trains for the steps or epochs asked"),
    Rule("group_by_length", why="ftc samples rows in the seed's order"),
    Rule("plugins", why="ftc's kernels are train.kernels; Axolotl's plugins have no equivalent"),
    Rule("local_rank", why="the launcher sets each process's rank"),
    Rule("debug", why="ftc validate --data checks the records"),
)


def import_config(job: Import) -> None:
    run_rules(job, RULES, f"not a key of {TOOL}'s that ftc knows")
    if job.lookup("train.global_batch_size") is None:
        batch(job, "micro_batch_size", "gradient_accumulation_steps")
    if job.lookup("train.method") is None:
        job.set("train.method", "full")  # no adapter: Axolotl trains every weight
