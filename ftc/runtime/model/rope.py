"""model.rope_scaling: the base model's config with its rotary positions stretched, as transformers reads them.

transformers 5 keeps a model's RoPE settings in `config.rope_parameters` and computes the frequencies
from them when the model is built, so the scaling goes into the config the model is loaded with. The
trained model saves that config, so export and chat use the same positions.
"""

from __future__ import annotations

from typing import Any

from ftc.errors import RuntimeUserError
from ftc.spec.models import ModelSection

# Kinds computed against the length the model was trained on, which they are told; dynamic NTK reads it
# from max_position_embeddings instead, so that one stays as it was there.
_TOLD_THE_TRAINED_LENGTH = ("yarn", "llama3")
LLAMA3_FREQUENCY_BANDS = {"low_freq_factor": 1.0, "high_freq_factor": 4.0}  # Llama 3.1's published values


def rope_scaled_config(model: ModelSection) -> Any | None:
    """The base's config with model.rope_scaling applied (None without it: the model loads its own)."""
    scaling = model.rope_scaling
    if scaling is None:
        return None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        model.name_or_path, revision=model.revision, trust_remote_code=model.trust_remote_code
    )
    text = config.get_text_config()
    parameters = dict(getattr(text, "rope_parameters", None) or {})
    if "rope_theta" not in parameters:
        raise RuntimeUserError(
            f"model.rope_scaling: {model.name_or_path!r} ({text.model_type}) has no rotary positions to scale",
            "remove model.rope_scaling",
        )
    if parameters.get("rope_type", "default") != "default":
        raise RuntimeUserError(
            f"model.rope_scaling: {model.name_or_path!r} scales its rotary positions already "
            f"({parameters['rope_type']}, factor {parameters.get('factor')})",
            "remove model.rope_scaling: the model reaches its max_position_embeddings as it is",
        )
    trained_length = text.max_position_embeddings
    parameters.update(rope_type=scaling.type, factor=scaling.factor)
    if scaling.type in _TOLD_THE_TRAINED_LENGTH:
        parameters["original_max_position_embeddings"] = trained_length
    if scaling.type == "llama3":
        parameters.update(LLAMA3_FREQUENCY_BANDS)
    text.rope_parameters = parameters
    if scaling.type != "dynamic":
        text.max_position_embeddings = int(trained_length * scaling.factor)  # what the plan counts too
    text.validate_rope()
    return config


def rope_scaling_arguments(model: ModelSection) -> dict[str, Any]:
    """from_pretrained's `config` where model.rope_scaling changes it; nothing otherwise."""
    config = rope_scaled_config(model)
    return {} if config is None else {"config": config}
