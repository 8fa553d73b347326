"""LLaMA-Factory's training YAML (`llamafactory-cli train FILE.yaml`), key by key into an ftc spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftc.importers.common import batch, deepspeed, named_datasets
from ftc.importers.core import (
    Import,
    Rule,
    UnmappableValue,
    boolean,
    names,
    number,
    one_of,
    run_rules,
    targets,
    text,
    whole,
)

TOOL = "LLaMA-Factory"
# LF's template names that ftc's registry spells the same; any other leaves the tokenizer's own template.
_TEMPLATES = ("baichuan2", "chatglm3", "chatml", "deepseek", "deepseek3", "gemma", "llama2", "llama3", "mistral")
_TEMPLATES += ("phi3", "qwen", "yi")
_STAGES = {"pt": "pt", "sft": "sft", "rm": "rm", "ppo": "ppo", "dpo": "dpo", "kto": "kto"}
# pref_loss: trl's loss types for dpo; orpo and simpo are stages of their own in ftc (simpo through cpo).
_PREF_LOSSES = {"sigmoid": "sigmoid", "hinge": "hinge", "ipo": "ipo", "kto_pair": None, "orpo": None, "simpo": "simpo"}
_ATTENTION = {"auto": "auto", "disabled": "eager", "eager": "eager", "sdpa": "sdpa", "fa2": "flash", "fa3": None}
_SCHEDULERS = {name: name for name in ("linear", "cosine", "constant", "constant_with_warmup")}
_SCHEDULERS |= {"cosine_with_restarts": None, "polynomial": None, "inverse_sqrt": None, "cosine_with_min_lr": None}
_OPTIM = {"adamw_torch": "adamw", "adamw_torch_fused": "adamw", "adamw_hf": "adamw", "adamw_8bit": "adamw_8bit"}
_OPTIM |= {"adamw_bnb_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit", "sgd": None, "adafactor": None}
_LONGEST_TIMEOUT = 86_400  # launch.collective_timeout_s's bound
_QUANT_BACKENDS = {"bnb": "bitsandbytes", "bitsandbytes": "bitsandbytes", "hqq": "hqq", "eetq": "eetq"}
_QUANT_BACKENDS |= {"gptq": None, "awq": None, "aqlm": None}
_MONITORS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "swanlab": None, "all": None}


def _stage(job: Import, value: Any) -> None:
    stage = one_of(_STAGES, "stage")(value)
    loss = job.get("pref_loss")
    if loss is not None and stage != "dpo":
        job.leave_out("pref_loss", f"read by stage dpo only, and stage is {stage!r}")
    if stage == "dpo" and loss is not None:
        try:
            loss_type = one_of(_PREF_LOSSES | {"orpo": "orpo"}, "pref_loss")(loss)
        except UnmappableValue as error:
            raise job.fail("pref_loss", error.message, "use sigmoid, hinge, ipo, orpo or simpo") from None
        if loss_type == "orpo":
            stage = "orpo"
            job.notes.append("pref_loss: orpo → train.stage = 'orpo' (ORPO needs no reference model)")
        elif loss_type == "simpo":
            stage = "cpo"
            job.set("preference.loss_type", "simpo")
            job.notes.append("pref_loss: simpo → train.stage = 'cpo' with preference.loss_type = 'simpo'")
        else:
            job.set("preference.loss_type", loss_type)
    job.set("train.stage", stage)
    method = one_of({"full": "full", "freeze": "freeze", "lora": "lora", "oft": "oft"}, "finetuning_type")
    try:
        chosen = method(job.get("finetuning_type", "lora"))
    except UnmappableValue as error:
        raise job.fail("finetuning_type", error.message, error.hint) from None
    if job.has("quantization_bit"):
        if chosen != "lora":
            raise job.fail("quantization_bit", f"ftc quantizes the base for LoRA only (qlora), not {chosen}", "")
        chosen = "qlora"
    job.set("train.method", chosen)


def _quantization_bit(job: Import, value: Any) -> None:
    bits = whole(value)
    if bits not in (2, 3, 4, 8):
        raise UnmappableValue(f"{bits} bits: ftc quantizes to 2, 3, 4 or 8", "use 4 (QLoRA) or 8")
    job.set("quantization.bits", bits)


def _template(job: Import, value: Any) -> None:
    name = text(value)
    if name in _TEMPLATES:
        job.set("model.template", name)
    else:
        job.leave_out("template", f"ftc has no template {name!r}; model.template = 'auto' uses the tokenizer's own")


def _rope_scaling(job: Import, value: Any) -> None:
    kind = one_of({name: name for name in ("linear", "dynamic", "yarn", "llama3")}, "rope_scaling")(value)
    job.set("model.rope_scaling", {"type": kind, "factor": 2.0})
    job.notes.append(
        "rope_scaling: LLaMA-Factory derives the factor from cutoff_len over the model's own length, which the "
        "config does not hold; model.rope_scaling.factor = 2.0 is a guess to check"
    )


def _precision(name: str):
    def apply(job: Import, value: Any) -> None:
        if boolean(value):
            job.set("train.precision", name)

    return apply


def _dataset(list_key: str):
    def apply(job: Import, value: Any) -> None:
        key = "dataset" if list_key == "datasets" else "eval_dataset"
        info = job.options.get("dataset_info")
        if info is None:
            folder = text(job.get("dataset_dir", "data"))
            info = job.source.file.parent / folder / "dataset_info.json"
        samples = whole(job.get("max_samples")) if job.has("max_samples") else None
        named_datasets(job, key, names(value), Path(info), list_key, samples)

    return apply


def _mix(job: Import, value: Any) -> None:
    strategy = text(value)
    if strategy == "concat":
        return
    if not strategy.startswith("interleave"):
        raise UnmappableValue(f"mix_strategy {strategy!r} has no equivalent", "use concat or interleave_under")
    probabilities = job.get("interleave_probs")
    datasets = job.lookup("data.datasets", [])
    weights = [number(part) for part in names(probabilities)] if probabilities is not None else [1.0] * len(datasets)
    if len(weights) != len(datasets):
        raise job.fail("interleave_probs", f"{len(weights)} weights for {len(datasets)} datasets", "one per dataset")
    for table, weight in zip(datasets, weights, strict=True):
        table["weight"] = weight
    job.notes.append(f"mix_strategy: {strategy} → each dataset's weight; ftc samples a weighted mixture")


def _val_size(job: Import, value: Any) -> None:
    size = number(value)
    if not 0 < size < 1:
        raise UnmappableValue("ftc holds out a fraction (data.eval_ratio), not a count", "write a fraction below 1")
    job.set("data.eval_ratio", size)


def _max_steps(job: Import, value: Any) -> None:
    steps = whole(value)
    if steps > 0:  # transformers' -1: train for the epochs
        job.set("train.max_steps", steps)


def _epochs(job: Import, value: Any) -> None:
    if job.has("max_steps") and whole(job.get("max_steps")) > 0:
        job.leave_out("num_train_epochs", "max_steps is set, which transformers lets win")
        return
    job.set("train.epochs", number(value))


def _warmup_steps(job: Import, value: Any) -> None:
    steps, total = whole(value), job.lookup("train.max_steps")
    if steps == 0:
        return
    if total is None:
        job.leave_out("warmup_steps", "ftc warms up for a ratio of the steps; give warmup_ratio")
        return
    job.set("train.warmup_ratio", min(1.0, steps / total))


def _ddp_timeout(job: Import, value: Any) -> None:
    seconds = whole(value)
    if seconds > _LONGEST_TIMEOUT:  # LF's examples write a huge one to mean "never"
        job.leave_out(
            "ddp_timeout", f"above ftc's longest collective timeout ({_LONGEST_TIMEOUT} s); its default applies"
        )
        return
    job.set("launch.collective_timeout_s", seconds)


def _report_to(job: Import, value: Any) -> None:
    monitors = [name for name in names(value) if name.lower() != "none"]
    job.set("monitor.report_to", [one_of(_MONITORS, "report_to")(name) for name in monitors])


def _optimizer(name: str, section: str | None = None):
    def apply(job: Import, value: Any) -> None:
        if not boolean(value):
            return
        job.set("train.optimizer", name)
        if name == "galore_adamw" and str(job.get("optim", "")).endswith("8bit"):
            job.set("train.optimizer", "galore_adamw_8bit")

    return apply


def _optim(job: Import, value: Any) -> None:
    if job.lookup("train.optimizer") is not None:
        return  # a use_* key chose it (GaLore reads optim for its 8-bit moments)
    job.set("train.optimizer", one_of(_OPTIM, "optim")(value))


def _llama_pro(job: Import, value: Any) -> None:
    if not boolean(value):
        return
    if not job.has("freeze_trainable_layers"):
        raise UnmappableValue("use_llama_pro trains the added blocks freeze_trainable_layers counts", "set it")
    added = whole(job.get("freeze_trainable_layers"))
    job.set("llama_pro.added_layers", added)
    job.notes.append(
        f"use_llama_pro: [llama_pro] added_layers = {added}; ftc adds the blocks itself, so model.name_or_path "
        "must be the base before expansion, not the expanded folder"
    )


def _freeze_layers(job: Import, value: Any) -> None:
    if job.has("use_llama_pro") and boolean(job.get("use_llama_pro")):
        return  # the count of added blocks
    if job.lookup("train.method") != "freeze":
        job.leave_out("freeze_trainable_layers", "read by finetuning_type freeze only")
        return
    job.set("freeze.trainable_layers", whole(value))


def _pissa(job: Import, value: Any) -> None:
    if boolean(value):
        fast = job.get("pissa_iter", 16) != -1
        job.set("lora.init", "pissa_fast" if fast else "pissa")


def _method_key(section: str, field: str, convert, methods: tuple[str, ...]):
    """A key of one method's section, kept only when the run trains that way (LF ignores it otherwise)."""

    def apply(job: Import, value: Any) -> None:
        if job.lookup("train.method") in methods:
            job.set(f"{section}.{field}", convert(value))

    return apply


def _oft_size(field: str):
    """OFT is sized by its rank or its block size; LF writes 0 for the one left to the other."""

    def apply(job: Import, value: Any) -> None:
        if job.lookup("train.method") == "oft" and whole(value) != 0:
            job.set(f"oft.{field}", whole(value))

    return apply


def _optimizer_key(section: str, field: str, convert):
    def apply(job: Import, value: Any) -> None:
        if str(job.lookup("train.optimizer", "")).startswith(section):
            job.set(f"{section}.{field}", convert(value))

    return apply


_ADAPTER = ("lora", "qlora")
_TEXT_ONLY = "ftc trains on text only"
_CACHE = "ftc prepares and caches the data itself (data.cache)"

RULES: tuple[Rule, ...] = (
    # the stage first: the datasets' format and the method's keys depend on it
    Rule("stage", apply=_stage),
    Rule("finetuning_type", consumed=True),
    Rule("pref_loss", consumed=True),
    Rule("model_name_or_path", to="model.name_or_path", convert=text),
    Rule("adapter_name_or_path", to="model.adapter", convert=text),
    Rule("template", apply=_template),
    Rule("trust_remote_code", to="model.trust_remote_code", convert=boolean),
    Rule("flash_attn", to="model.attention", convert=one_of(_ATTENTION, "flash_attn")),
    Rule("cutoff_len", to="data.cutoff_len", convert=whole),
    Rule("rope_scaling", apply=_rope_scaling),
    Rule("quantization_bit", apply=_quantization_bit),
    Rule("quantization_method", to="quantization.backend", convert=one_of(_QUANT_BACKENDS, "quantization_method")),
    Rule("double_quantization", why="ftc sets bitsandbytes' 4-bit options itself (QLoRA's recipe)"),
    Rule("quantization_type", why="ftc sets bitsandbytes' 4-bit options itself (QLoRA's recipe)"),
    Rule("lora_rank", apply=_method_key("lora", "rank", whole, _ADAPTER)),
    Rule("lora_alpha", apply=_method_key("lora", "alpha", number, _ADAPTER)),
    Rule("lora_dropout", apply=_method_key("lora", "dropout", number, _ADAPTER)),
    Rule("lora_target", apply=_method_key("lora", "target", targets, _ADAPTER)),
    Rule("use_dora", apply=_method_key("lora", "use_dora", boolean, _ADAPTER)),
    Rule("use_rslora", apply=_method_key("lora", "use_rslora", boolean, _ADAPTER)),
    Rule("loraplus_lr_ratio", apply=_method_key("lora", "plus_lr_ratio", number, _ADAPTER)),
    Rule("pissa_init", apply=_pissa),
    Rule("pissa_iter", consumed=True),
    Rule("pissa_convert", why="ftc keeps the PiSSA adapter as trained; ftc export merges it"),
    Rule("additional_target", why="ftc's LoRA trains adapters only; use method full or freeze for whole modules"),
    Rule("create_new_adapter", why="ftc trains model.adapter further, or a new adapter on a merged base"),
    Rule("oft_rank", apply=_oft_size("rank")),
    Rule("oft_block_size", apply=_oft_size("block_size")),
    Rule("oft_target", apply=_method_key("oft", "target", targets, ("oft",))),
    Rule("use_llama_pro", apply=_llama_pro),
    Rule("freeze_trainable_layers", apply=_freeze_layers),
    Rule("freeze_trainable_modules", apply=_method_key("freeze", "trainable_modules", targets, ("freeze",))),
    Rule("freeze_extra_modules", apply=_method_key("freeze", "extra_modules", names, ("freeze",))),
    Rule("use_galore", apply=_optimizer("galore_adamw")),
    Rule("use_apollo", apply=_optimizer("apollo_adamw")),
    Rule("use_badam", apply=_optimizer("badam")),
    Rule("use_adam_mini", apply=_optimizer("adam_mini")),
    Rule("use_muon", apply=_optimizer("muon")),
    Rule("optim", apply=_optim),
    Rule("galore_rank", apply=_optimizer_key("galore", "rank", whole)),
    Rule("galore_target", apply=_optimizer_key("galore", "target", targets)),
    Rule("galore_update_interval", apply=_optimizer_key("galore", "update_proj_gap", whole)),
    Rule("galore_scale", apply=_optimizer_key("galore", "scale", number)),
    Rule("galore_proj_type", apply=_optimizer_key("galore", "proj_type", text)),
    Rule("galore_layerwise", apply=_optimizer_key("galore", "layerwise", boolean)),
    Rule("apollo_rank", apply=_optimizer_key("apollo", "rank", whole)),
    Rule("apollo_target", apply=_optimizer_key("apollo", "target", targets)),
    Rule("apollo_update_interval", apply=_optimizer_key("apollo", "update_proj_gap", whole)),
    Rule("apollo_scale", apply=_optimizer_key("apollo", "scale", number)),
    Rule("apollo_proj", apply=_optimizer_key("apollo", "proj", text)),
    Rule("apollo_scale_type", apply=_optimizer_key("apollo", "scale_type", text)),
    Rule("apollo_layerwise", apply=_optimizer_key("apollo", "layerwise", boolean)),
    Rule("apollo_proj_type", why="ftc's APOLLO projects one way (apollo.proj)"),
    Rule("apollo_scale_front", why="no equivalent in ftc's [apollo]"),
    Rule("badam_mode", apply=_optimizer_key("badam", "mode", text)),
    Rule("badam_switch_interval", apply=_optimizer_key("badam", "switch_every", whole)),
    Rule("badam_switch_mode", apply=_optimizer_key("badam", "switch_mode", text)),
    Rule("badam_start_block", apply=_optimizer_key("badam", "start_block", whole)),
    Rule("badam_update_ratio", why="ratio mode is refused by ftc (sparse gradients); layer mode has no ratio"),
    Rule("badam_mask_mode", why="no equivalent in ftc's [badam]"),
    Rule("badam_verbose", why="ftc's log is not configurable per optimizer"),
    Rule("shift_attn", to="train.shift_attention", convert=boolean),
    Rule("enable_liger_kernel", apply=lambda job, v: boolean(v) and job.set("train.kernels", ["liger"])),
    Rule("use_unsloth", why="unsloth is left out of ftc's kernels (train.kernels offers liger)"),
    Rule("use_unsloth_gc", why="unsloth is left out of ftc's kernels; ftc checkpoints through transformers"),
    Rule("mixture_of_depths", why="ftc does not convert models to Mixture-of-Depths"),
    Rule("neftune_noise_alpha", to="train.neftune_alpha", convert=number),
    # data
    Rule("dataset", apply=_dataset("datasets")),
    Rule("eval_dataset", apply=_dataset("eval_datasets")),
    Rule("dataset_dir", consumed=True),
    Rule("max_samples", consumed=True),
    Rule("mix_strategy", apply=_mix),
    Rule("interleave_probs", consumed=True),
    Rule("packing", to="data.packing", convert=boolean),
    Rule("neat_packing", apply=lambda job, v: boolean(v) and job.set("data.packing", True)),
    Rule("streaming", to="data.streaming", convert=boolean),
    Rule("val_size", apply=_val_size),
    Rule("tokenized_path", why=_CACHE),
    Rule("overwrite_cache", why=_CACHE),
    Rule("preprocessing_num_workers", why=_CACHE),
    Rule("preprocessing_batch_size", why=_CACHE),
    Rule("dataloader_num_workers", why="ftc's data loader settings are its own"),
    Rule("train_on_prompt", why="ftc's sft learns from the assistant's replies only"),
    Rule("mask_history", why="ftc's sft learns from every assistant reply"),
    Rule("image_max_pixels", why=_TEXT_ONLY),
    Rule("image_min_pixels", why=_TEXT_ONLY),
    Rule("video_fps", why=_TEXT_ONLY),
    Rule("video_max_pixels", why=_TEXT_ONLY),
    Rule("freeze_vision_tower", why=_TEXT_ONLY),
    Rule("freeze_multi_modal_projector", why=_TEXT_ONLY),
    Rule("train_mm_proj_only", why=_TEXT_ONLY),
    # training
    Rule("output_dir", to="output.dir", convert=text),
    Rule(
        "per_device_train_batch_size",
        apply=lambda job, _: batch(job, "per_device_train_batch_size", "gradient_accumulation_steps"),
    ),
    Rule("gradient_accumulation_steps", consumed=True),
    Rule("learning_rate", to="train.learning_rate", convert=number),
    Rule("max_steps", apply=_max_steps),
    Rule("num_train_epochs", apply=_epochs),
    Rule("lr_scheduler_type", to="train.lr_scheduler", convert=one_of(_SCHEDULERS, "lr_scheduler_type")),
    Rule("warmup_ratio", to="train.warmup_ratio", convert=number),
    Rule("warmup_steps", apply=_warmup_steps),
    Rule("weight_decay", to="train.weight_decay", convert=number),
    Rule("max_grad_norm", to="train.max_grad_norm", convert=number),
    Rule("seed", to="train.seed", convert=whole),
    Rule("logging_steps", to="train.logging_steps", convert=whole),
    Rule("save_steps", to="train.save_steps", convert=whole),
    Rule("save_total_limit", to="train.save_total_limit", convert=whole),
    Rule("bf16", apply=_precision("bf16")),
    Rule("pure_bf16", apply=_precision("bf16")),
    Rule("fp16", apply=_precision("fp16")),
    Rule("gradient_checkpointing", to="train.gradient_checkpointing", convert=boolean),
    Rule(
        "disable_gradient_checkpointing",
        apply=lambda job, v: boolean(v) and job.set("train.gradient_checkpointing", False),
    ),
    Rule("deepspeed", apply=lambda job, v: deepspeed(job, "deepspeed", v)),
    Rule("fsdp", apply=lambda job, v: v and job.set("train.strategy", "fsdp")),
    Rule("fsdp_config", why="ftc writes FSDP's settings from the plan (train.strategy = 'fsdp')"),
    Rule("ddp_timeout", apply=_ddp_timeout),
    Rule("report_to", apply=_report_to),
    Rule("run_name", to="monitor.run_name", convert=text),
    Rule("plot_loss", why="ftc's report always plots the loss (ftc report)"),
    Rule("overwrite_output_dir", why="ftc launch refuses a used run folder; pick a new output.dir"),
    Rule("save_only_model", why="ftc keeps what a resume needs in each checkpoint"),
    Rule("resume_from_checkpoint", why="resume with ftc launch --resume"),
    Rule("do_train", why="every ftc run trains"),
    Rule("do_eval", why="ftc evaluates when data.eval_ratio or data.eval_datasets is set"),
    Rule("do_predict", why="prediction on held-out prompts is ftc eval --predict"),
    Rule("eval_strategy", why="ftc has no evaluation schedule key"),
    Rule("eval_steps", why="ftc has no evaluation schedule key"),
    Rule("per_device_eval_batch_size", why="ftc evaluates at the training micro-batch"),
    Rule("predict_with_generate", why="prediction on held-out prompts is ftc eval --predict"),
    # preference and PPO
    Rule("pref_beta", to="preference.beta", convert=number),
    Rule("pref_ftx", to="preference.ftx", convert=number),
    Rule("simpo_gamma", apply=lambda job, v: job.set("preference.simpo_gamma", number(v))),
    Rule("kto_chosen_weight", to="preference.desirable_weight", convert=number),
    Rule("kto_rejected_weight", to="preference.undesirable_weight", convert=number),
    Rule("dpo_label_smoothing", why="ftc's preference losses take no label smoothing"),
    Rule("pref_bco_weight", why="no equivalent in ftc's [preference]"),
    Rule("ld_alpha", why="no equivalent in ftc's [preference]"),
    Rule("reward_model", to="ppo.reward_model", convert=text),
    Rule("reward_model_type", why="ftc's ppo.reward_model is a whole model folder or hub id"),
    Rule("ppo_epochs", to="ppo.ppo_epochs", convert=whole),
    Rule("max_new_tokens", to="ppo.max_new_tokens", convert=whole),
    Rule("temperature", to="ppo.temperature", convert=number),
    Rule("top_k", why="ftc's PPO samples with temperature only"),
    Rule("top_p", why="ftc's PPO samples with temperature only"),
    Rule("ppo_buffer_size", why="ftc's PPO learns from each step's samples"),
    Rule("ppo_score_norm", why="no equivalent in ftc's [ppo]"),
    Rule("ppo_whiten_rewards", why="no equivalent in ftc's [ppo]"),
    Rule("ppo_target", why="ftc's PPO keeps a fixed ppo.kl_coef"),
    Rule("ppo_logger", why="monitors are [monitor] report_to"),
)


def import_config(job: Import) -> None:
    if not job.has("stage"):  # LF's default; the datasets' format and the method's keys depend on it
        _stage(job, "sft")
    run_rules(job, RULES, f"not a key of {TOOL}'s that ftc knows")
    if job.lookup("train.global_batch_size") is None:
        batch(job, "per_device_train_batch_size", "gradient_accumulation_steps")
