"""[llama_pro]: identity copies of decoder blocks put into the loaded base, before freeze or LoRA picks what trains.

Where the copies go and which families take them is the compiler's (`ftc.compiler.block_expansion`), so the
plan counts the model made here. Each copy's attention and MLP output projections are zeroed: both add
nothing to the residual stream, so the expanded model's outputs are the base's until the copies train.
The config grows with the blocks, so the saved model (and the base expanded again by `ftc export` for a
LoRA run) reloads with them.
"""

from __future__ import annotations

from typing import Any

from ftc.compiler.block_expansion import added_blocks, expansion_refusal, output_projections
from ftc.compiler.model_families import FAMILIES
from ftc.errors import RuntimeUserError
from ftc.runtime.model.freeze import decoder_layers

# Config lists with one entry per decoder block (sliding or full attention, for Gemma 2 and Qwen); a copy takes
# its source block's entry.
PER_LAYER_KEYS = ("layer_types",)


def expand_blocks(model: Any, added: int) -> tuple[int, ...]:
    """Insert `added` identity copies among the model's decoder blocks; their indices, in order."""
    import copy

    text = model.config.get_text_config()
    layers = decoder_layers(model)
    base_layers = len(layers)
    refused = expansion_refusal(text.model_type, base_layers, added)
    if refused:
        raise RuntimeUserError(*refused)
    places = added_blocks(base_layers, added)
    zeroed = output_projections(FAMILIES[text.model_type])
    # Blocks keep a reference to the model's config (attention reads its kernel there): copies share it.
    shared = {id(model.config): model.config, id(text): text}
    blocks: list[Any] = []
    sources: list[int] = []  # the base block each new position holds, or was copied from
    originals = iter(enumerate(layers))
    for position in range(base_layers + added):
        if position in places:
            blocks.append(_identity_copy(copy.deepcopy(blocks[-1], dict(shared)), zeroed))
            sources.append(sources[-1])
        else:
            index, block = next(originals)
            blocks.append(block)
            sources.append(index)
    for index in reversed(range(base_layers)):
        del layers[index]
    layers.extend(blocks)
    for position, block in enumerate(layers):
        for module in block.modules():
            # transformers' attention modules find their place in the KV cache by it
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = position
    for key in PER_LAYER_KEYS:
        values = getattr(text, key, None)
        if isinstance(values, list) and len(values) == base_layers:
            setattr(text, key, [values[source] for source in sources])
    text.num_hidden_layers = len(layers)
    return places


def _identity_copy(block: Any, zeroed: tuple[str, ...]) -> Any:
    """The block with its output projections' weights and biases at zero: it hands its input on unchanged."""
    import torch

    found = {name: 0 for name in zeroed}
    with torch.no_grad():
        for path, module in block.named_modules():
            name = path.rsplit(".", 1)[-1]
            if name in found:
                found[name] += 1
                for param in module.parameters():
                    param.zero_()
    missing = [name for name, count in found.items() if not count]
    if missing:
        raise RuntimeUserError(
            f"llama_pro.added_layers: found no {', '.join(map(repr, missing))} in a {type(block).__name__} to zero",
            "remove [llama_pro]: this model's blocks are not laid out as its model_type's are",
        )
    return block


def expand_for_spec(model: Any, added: int | None) -> tuple[int, ...]:
    """[llama_pro]'s expansion where the spec asks for it, said in the run's output; the copies' indices."""
    if added is None:
        return ()
    before = len(decoder_layers(model))
    places = expand_blocks(model, added)
    print(
        f"LLaMA Pro: {added} identity copies inserted, {before} → {before + added} decoder blocks; "
        f"the copies are blocks {', '.join(map(str, places))}",
        flush=True,
    )
    return places
