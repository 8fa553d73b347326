"""`ftc export RUN_DIR`: the trained result as one standalone model folder (safetensors + tokenizer).

A LoRA or QLoRA adapter is merged into its base, loaded at full precision from the spec's model
(merging into 4-bit weights would round the update away) and, for a [llama_pro] run, expanded again
as the run expanded it, since the adapter sits on the added blocks; a full or freeze run's model
(an expanded one included) is saved again in the dtype asked for. Written beside the run as
RUN_DIR/merged (or --output), whole or not at all.

An image+text model (its family's record names vision parts) is loaded and saved as one
(AutoModelForImageTextToText): the adapter merges into the language model, the vision tower and the
projector are kept (trained whole where [vision] said so), and its processor — tokenizer with the run's
chat template, image processor — is written beside it, so the export loads with AutoProcessor.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ftc.errors import RuntimeUserError
from ftc.runs.folder import RunFolder, load_run_folder

DTYPES = ("auto", "fp32", "bf16", "fp16")
MERGED = "merged"


def trained_folder(folder: RunFolder, checkpoint: str | None) -> Path:
    """The run's final adapter/model, or one of its checkpoints by name (checkpoint-20)."""
    if checkpoint is None:
        if not folder.trained.is_dir():
            raise RuntimeUserError(
                f"{folder.trained} not found: the run has not finished",
                f"export a checkpoint instead: --checkpoint {_latest_checkpoint_name(folder) or 'checkpoint-N'}",
            )
        return folder.trained
    path = folder.checkpoints / checkpoint
    if not path.is_dir():
        names = sorted(p.name for p in folder.checkpoints.glob("checkpoint-*")) if folder.checkpoints.is_dir() else []
        raise RuntimeUserError(f"no checkpoint {checkpoint!r} in {folder.checkpoints}", f"have: {names or 'none'}")
    return path


def _latest_checkpoint_name(folder: RunFolder) -> str | None:
    found = sorted(folder.checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.rpartition("-")[2] or 0))
    return found[-1].name if found else None


def is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def load_trained(folder: RunFolder, trained: Path, dtype: str = "auto", merge: bool = True) -> Any:
    """The trained model as one torch module: adapter merged into its base, or the saved full model. With
    merge=False an adapter stays a peft wrapper over its base, as `ftc serve` runs it (no merged copy made)."""
    from ftc.runtime.model.precision import torch_dtype

    loaded_dtype = "auto" if dtype == "auto" else torch_dtype(dtype)
    model = folder.spec.model
    if not is_adapter(trained):
        return _model_class(trained, images=has_images(trained))[0].from_pretrained(trained, dtype=loaded_dtype)
    from peft import PeftModel

    task = json.loads((trained / "adapter_config.json").read_text(encoding="utf-8")).get("task_type")
    base_class, extra = _model_class(trained, task, images=has_images(folder))
    base = base_class.from_pretrained(
        model.name_or_path,
        revision=model.revision,
        trust_remote_code=model.trust_remote_code,
        dtype=loaded_dtype,
        **extra,
    )
    if folder.spec.llama_pro.added_layers is not None:
        from ftc.runtime.model.block_expansion import expand_blocks

        # the copies are made from the base alone, so they are the ones the adapter was trained on
        expand_blocks(base, folder.spec.llama_pro.added_layers)
    adapted = PeftModel.from_pretrained(base, trained)
    return adapted.merge_and_unload() if merge else adapted


def has_images(source: RunFolder | Path) -> bool:
    """Whether a run's base model (or a saved model folder) is an image+text model, by its family's record."""
    from transformers import AutoConfig

    from ftc.runtime.model.loading import model_config
    from ftc.runtime.model.vision import vision_parts

    config = model_config(source.spec.model) if isinstance(source, RunFolder) else AutoConfig.from_pretrained(source)
    return vision_parts(config) is not None


def _model_class(trained: Path, task: str | None = None, images: bool = False) -> tuple[Any, dict[str, Any]]:
    """Causal LM, the sequence-classification model (one score) a reward-model run trains, or an image+text model."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSequenceClassification

    if images:
        return AutoModelForImageTextToText, {}
    architectures = []
    if (trained / "config.json").is_file():
        architectures = json.loads((trained / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    if task == "SEQ_CLS" or any("SequenceClassification" in name for name in architectures):
        return AutoModelForSequenceClassification, {"num_labels": 1}
    return AutoModelForCausalLM, {}


def run_processor(folder: RunFolder, trained: Path) -> Any:
    """An image+text run's processor, made as the run made it: the base model's, with the run's chat template and
    its data.image_*_pixels. (The copy saved beside an adapter has no model config to be loaded by; a checkpoint
    has none at all.)"""
    from ftc.runtime.data.images import apply_pixel_bounds
    from ftc.runtime.data.tokenize import use_template
    from ftc.runtime.model.loading import model_config
    from ftc.runtime.model.processor import load_processor
    from ftc.runtime.model.vision import vision_parts

    spec = folder.spec
    processor = load_processor(spec.model.name_or_path, spec.model.revision, spec.model.trust_remote_code)
    use_template(processor.tokenizer, spec.model.template)
    parts = vision_parts(model_config(spec.model))
    apply_pixel_bounds(processor, parts.pixel_bounds, spec.data.image_min_pixels, spec.data.image_max_pixels)
    return processor


def export(
    run_dir: str | Path,
    output: str | Path | None = None,
    checkpoint: str | None = None,
    dtype: str = "auto",
    overwrite: bool = False,
) -> Path:
    from transformers import AutoTokenizer

    folder = load_run_folder(run_dir)
    trained = trained_folder(folder, checkpoint)
    target = Path(output) if output is not None else folder.path / MERGED
    if target.exists() and not overwrite:
        raise RuntimeUserError(f"{target} exists", "pass --overwrite to replace it, or --output another folder")
    model = load_trained(folder, trained, dtype)
    images = has_images(folder)
    # the run's tokenizer carries the chat template; an image+text model's processor carries that tokenizer
    tokenizer = run_processor(folder, trained) if images else AutoTokenizer.from_pretrained(trained)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        if images:
            from ftc.runtime.model.processor import save_processor

            save_processor(tokenizer, staging)
        else:
            tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
