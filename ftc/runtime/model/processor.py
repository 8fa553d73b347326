"""An image+text model's processor (tokenizer + image processor), loaded without torchvision.

transformers chooses its Pillow image processors when torchvision is missing, but a processor that also
declares a video processor (Qwen2-VL's) cannot be built then: the video processors need torchvision, and
the processor checks each part's class. We train on images only, so such a processor is assembled from its
tokenizer and its Pillow image processor, with no video processor; with torchvision installed, or for a
processor with no video part, transformers' AutoProcessor loads it as usual.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

# The files a processor folder holds besides the tokenizer's and the image processor's.
PROCESSOR_CONFIG = "processor_config.json"
CHAT_TEMPLATE = "chat_template.jinja"


def load_processor(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    import transformers
    from transformers import AutoConfig, AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    model_type = AutoConfig.from_pretrained(name_or_path, **options).model_type
    class_name = PROCESSOR_MAPPING_NAMES.get(model_type)
    processor_class = getattr(transformers, class_name, None) if class_name else None
    if (
        processor_class is None
        or "video_processor" not in processor_class.get_attributes()
        or importlib.util.find_spec("torchvision") is not None
    ):
        return AutoProcessor.from_pretrained(name_or_path, **options)
    return _without_video(processor_class, name_or_path, options)


def _without_video(processor_class: type, name_or_path: str, options: dict) -> Any:
    from transformers import AutoImageProcessor, AutoTokenizer
    from transformers.utils import cached_file

    settings = {}
    config_file = cached_file(name_or_path, PROCESSOR_CONFIG, _raise_exceptions_for_missing_entries=False, **options)
    if config_file:
        settings = json.loads(Path(config_file).read_text(encoding="utf-8"))
    settings = {key: value for key, value in settings.items() if key not in ("processor_class", "video_processor")}
    template_file = cached_file(name_or_path, CHAT_TEMPLATE, _raise_exceptions_for_missing_entries=False, **options)
    if template_file and "chat_template" not in settings:
        settings["chat_template"] = Path(template_file).read_text(encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **options)
    image_processor = AutoImageProcessor.from_pretrained(name_or_path, backend="pil", **options)
    return _images_only(processor_class)(image_processor=image_processor, tokenizer=tokenizer, **settings)


def _images_only(processor_class: type) -> type:
    """The processor class, letting its video processor be absent: the class check would look up a video class
    that only exists with torchvision."""

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument is None and argument_name == "video_processor":
            return None
        return processor_class.check_argument_for_proper_class(self, argument_name, argument)

    # transformers' own save would look up the absent video processor's class; a trainer given the processor
    # (trl's DPOTrainer) saves it with each checkpoint.
    def save_pretrained(self, save_directory, *args, **kwargs):
        save_processor_parts(save_directory, processor_class.__name__, self.tokenizer, self.image_processor)
        return []

    return type(
        processor_class.__name__,
        (processor_class,),
        {"check_argument_for_proper_class": check_argument_for_proper_class, "save_pretrained": save_pretrained},
    )


def save_processor_parts(folder: str | Path, processor_class_name: str, tokenizer: Any, image_processor: Any) -> None:
    """What `load_processor` (and, with torchvision, AutoProcessor) reads back: the tokenizer with its chat
    template, the image processor, and the processor's class."""
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    if tokenizer.chat_template:
        (folder / CHAT_TEMPLATE).write_text(tokenizer.chat_template, encoding="utf-8")
    config = {"processor_class": processor_class_name}
    (folder / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def save_processor(processor: Any, folder: str | Path) -> None:
    """The processor beside a trained model, so that it loads as the image+text model it is (one writer)."""
    import os

    if int(os.environ.get("RANK", 0)) != 0:
        return
    processor.save_pretrained(str(folder))  # one assembled without its video part saves its parts (`_images_only`)
