"""The module tree and freeze's selection, checked against transformers' own models and the runtime's freeze.

Each model is built on the meta device (shapes, no memory); the runtime's `freeze_all_but` then marks
what trains on it, and the compiler must count exactly those parameters.
"""

from __future__ import annotations

import json

import pytest

from ftc.compiler.architectures import ARCHITECTURES, architecture_from_config
from ftc.compiler.module_tree import freeze_selection, module_tree
from ftc.compiler.params import count_parameters
from ftc.errors import FtcError
from ftc.spec.models import FreezeSection
from tests.compiler.test_params import TINY, TINY_CASES, meta_model


def prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def own_parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters(recurse=False))


def real_blocks(model):
    from ftc.runtime.model.freeze import decoder_layers

    blocks = decoder_layers(model)
    path = next(name for name, module in model.named_modules() if module is blocks)
    return path, blocks


@pytest.mark.parametrize("case", TINY_CASES)
def test_the_tree_names_every_module_and_parameter_as_transformers_does(case):
    model_type, overrides = TINY_CASES[case]
    hf_config, model = meta_model(model_type, **{**TINY, **overrides})
    tree = module_tree(architecture_from_config(hf_config.to_dict()))
    path, blocks = real_blocks(model)
    assert tree.blocks_path == path

    for ours, theirs in zip(tree.blocks, blocks, strict=True):
        real = {name: own_parameters(module) for name, module in theirs.named_modules() if name}
        assert {prefix for module in ours for prefix in prefixes(module.path)} == set(real)
        assert {module.path: module.parameters for module in ours} == {
            name: count for name, count in real.items() if count or name in {m.path for m in ours}
        }

    inside = {id(module) for module in blocks.modules()}
    outside = {name: module for name, module in model.named_modules() if name and id(module) not in inside}
    enclosing = set(prefixes(path)[:-1])
    assert {prefix for module in tree.outside for prefix in prefixes(module.path)} | enclosing == set(outside)
    seen: dict[int, str] = {}  # a tied tensor belongs to the module that holds it first
    for module in tree.outside:
        for parameter in outside[module.path].parameters(recurse=False):
            seen.setdefault(id(parameter), module.path)
        owner = {seen[id(p)] for p in outside[module.path].parameters(recurse=False)}
        assert owner <= {module.same_as or module.path}, module.path
        assert module.parameters == own_parameters(outside[module.path]), module.path


@pytest.mark.parametrize("hub_id", ARCHITECTURES)
def test_the_tree_adds_up_to_the_parameter_count(hub_id):
    arch = ARCHITECTURES[hub_id].architecture
    tree = module_tree(arch)
    count = count_parameters(arch)
    assert tuple(sum(module.parameters for module in block) for block in tree.blocks) == count.per_layer
    untied = [module for module in tree.outside if module.same_as is None]
    assert sum(count.per_layer) + sum(module.parameters for module in untied) == count.total
    everything = freeze_selection(arch, arch.num_layers, "all", [])
    assert everything.parameters == sum(count.per_layer)


def freeze_settings(model, path: str) -> list[FreezeSection]:
    """Each module of the top block alone, each module outside the blocks alone, and a mix."""
    _, blocks = real_blocks(model)
    inside = {id(module) for module in blocks.modules()}
    block_names = sorted({name.rsplit(".", 1)[-1] for name, _ in blocks[-1].named_modules() if name})
    outside_names = sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and id(module) not in inside}
        - {path.rsplit(".", 1)[-1]}
    )
    settings = [FreezeSection(trainable_layers=2), FreezeSection(trainable_layers=1)]
    settings += [FreezeSection(trainable_layers=1, trainable_modules=[name]) for name in block_names]
    settings += [FreezeSection(trainable_layers=0, extra_modules=[name]) for name in outside_names]
    settings.append(FreezeSection(trainable_layers=1, trainable_modules=block_names[:2], extra_modules=outside_names))
    return settings


@pytest.mark.parametrize("case", TINY_CASES)
def test_freeze_counts_what_the_runtime_unfreezes(case):
    from ftc.runtime.model.freeze import freeze_all_but

    model_type, overrides = TINY_CASES[case]
    hf_config, model = meta_model(model_type, **{**TINY, **overrides})
    arch = architecture_from_config(hf_config.to_dict())
    path, _ = real_blocks(model)
    for freeze in freeze_settings(model, path):
        freeze_all_but(model, freeze)  # it freezes everything first, so one model serves every setting
        trained = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
        selected = freeze_selection(arch, freeze.trainable_layers, freeze.trainable_modules, freeze.extra_modules)
        assert selected.parameters == trained, freeze


def test_freeze_on_the_tiny_model_read_from_its_config_json(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from ftc.runtime.model.freeze import freeze_all_but

    arch = architecture_from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    settings = {
        "top layer": FreezeSection(trainable_layers=1),
        "attention of the top two": FreezeSection(trainable_layers=2, trainable_modules=["self_attn"]),
        "two projections": FreezeSection(trainable_layers=2, trainable_modules=["q_proj", "down_proj"]),
        "norms and head": FreezeSection(
            trainable_layers=1, trainable_modules=["input_layernorm"], extra_modules=["norm", "lm_head"]
        ),
        "embedding only": FreezeSection(trainable_layers=0, extra_modules=["embed_tokens"]),
    }
    counted = {}
    for name, freeze in settings.items():
        freeze_all_but(model, freeze)
        trained = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
        selection = freeze_selection(arch, freeze.trainable_layers, freeze.trainable_modules, freeze.extra_modules)
        counted[name] = (selection.parameters, trained)
    assert all(ours == theirs for ours, theirs in counted.values()), counted
    assert 0 < min(ours for ours, _ in counted.values()) < max(ours for ours, _ in counted.values())


def test_what_the_selection_reaches():
    arch = ARCHITECTURES["Qwen/Qwen2.5-0.5B"].architecture  # tied embeddings
    head_only = freeze_selection(arch, 0, "all", ["lm_head"])
    assert head_only.head and head_only.embedding  # one tensor
    assert head_only.parameters == arch.vocab_size * arch.hidden_size and head_only.blocks == frozenset()
    mlp = freeze_selection(arch, 2, ["mlp"], [])
    assert mlp.blocks == {arch.num_layers - 2, arch.num_layers - 1} and not mlp.embedding and not mlp.head
    assert mlp.matrices == mlp.parameters == 2 * 3 * arch.hidden_size * arch.intermediate_size
    norms = freeze_selection(arch, 1, ["input_layernorm"], [])
    assert norms.parameters == arch.hidden_size and norms.matrices == 0


@pytest.mark.parametrize(
    ("layers", "modules", "extra", "key"),
    [
        (2, ["mlp", "feed_forward"], [], "freeze.trainable_modules"),
        (0, "all", ["embed_tokens", "wte"], "freeze.extra_modules"),
        (1, "all", ["q_proj"], "freeze.extra_modules"),  # inside the blocks: not an extra module
    ],
)
def test_a_name_that_matches_no_module_is_refused_with_the_choices(layers, modules, extra, key):
    arch = ARCHITECTURES["meta-llama/Meta-Llama-3-8B"].architecture
    with pytest.raises(FtcError) as refused:
        freeze_selection(arch, layers, modules, extra)
    assert refused.value.message.startswith(key) and "choose from" in refused.value.hint
