"""Where each parameter sits in a model's module tree, by the names transformers (or the model's code) gives it.

Method `freeze` chooses what trains by module name: `freeze.trainable_modules` inside the top decoder
blocks and `freeze.extra_modules` outside them, each matched against the last part of a module's
dotted path, as `ftc.runtime.model.freeze.freeze_all_but` does. Counting what it trains needs those names,
not only the sizes in `params.count_parameters`; this module has both, and the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from ftc.compiler.model_families import family_of
from ftc.compiler.model_shapes import Architecture
from ftc.compiler.params import norm_size
from ftc.errors import FtcError


@dataclass(frozen=True)
class Module:
    """A module that holds parameters of its own (or none: an activation, a dropout), by its dotted path."""

    path: str  # inside a decoder block, from the block; outside, from the model's root
    parameters: int  # its own, not its children's
    matrix: int = 0  # of those, the elements of its weight matrices (a linear layer's, the stacked experts')
    same_as: str | None = None  # a tied module: its parameters are that module's (lm_head → embed_tokens)

    @property
    def names(self) -> tuple[str, ...]:
        """The names a freeze list may use to reach it: its own and each enclosing module's."""
        return tuple(self.path.split("."))


@dataclass(frozen=True)
class Naming:
    """A family's module names: where its decoder blocks, embedding and head live, and what a block holds."""

    blocks: str = "model.layers"  # the ModuleList of decoder blocks
    embedding: str = "model.embed_tokens"
    final_norm: str = "model.norm"
    head: str = "lm_head"
    embedding_norm: str = ""
    rotary: str = "model.rotary_emb"  # "" where rotary frequencies live inside attention, or not at all
    attention: str = "self_attn"
    mlp: str = "mlp"
    activation: str = "act_fn"  # "" where the activation is a plain function
    norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    in_attention: tuple[str, ...] = ()  # parameter-free modules inside attention (dropouts, rotary)
    in_block: tuple[str, ...] = ()  # parameter-free modules directly in a block


_FALCON_STYLE = Naming(
    blocks="transformer.h",
    embedding="transformer.word_embeddings",
    final_norm="transformer.ln_f",
    rotary="transformer.rotary_emb",
    attention="self_attention",
    activation="act",
    in_attention=("attention_dropout",),
)

NAMINGS = MappingProxyType(
    {
        "gemma2": Naming(
            norms=(
                "input_layernorm",
                "post_attention_layernorm",
                "pre_feedforward_layernorm",
                "post_feedforward_layernorm",
            )
        ),
        "olmo2": Naming(norms=("post_attention_layernorm", "post_feedforward_layernorm")),
        "phi3": Naming(activation="activation_fn", in_block=("resid_attn_dropout", "resid_mlp_dropout")),
        "starcoder2": Naming(activation="act"),
        "falcon": _FALCON_STYLE,
        "bloom": Naming(
            blocks=_FALCON_STYLE.blocks,
            embedding=_FALCON_STYLE.embedding,
            final_norm=_FALCON_STYLE.final_norm,
            embedding_norm="transformer.word_embeddings_layernorm",
            rotary="",  # ALiBi
            attention="self_attention",
            activation="gelu_impl",
            in_attention=("attention_dropout",),
        ),
        # Remote-code families, named as their modeling files name them.
        "internlm2": Naming(
            embedding="model.tok_embeddings",
            head="output",
            rotary="",
            attention="attention",
            mlp="feed_forward",
            norms=("attention_norm", "ffn_norm"),
            in_attention=("rotary_emb",),
        ),
        "chatglm": Naming(
            blocks="transformer.encoder.layers",
            embedding="transformer.embedding.word_embeddings",
            final_norm="transformer.encoder.final_layernorm",
            head="transformer.output_layer",
            rotary="transformer.rotary_pos_emb",
            attention="self_attention",
            activation="",
            in_attention=("core_attention",),
        ),
        "baichuan": Naming(rotary="", in_attention=("rotary_emb",)),
    }
)


@dataclass(frozen=True)
class ModuleTree:
    blocks_path: str  # the decoder blocks' ModuleList: block i's modules live under f"{blocks_path}.{i}"
    blocks: tuple[tuple[Module, ...], ...]  # each decoder block's modules, paths from the block
    outside: tuple[Module, ...] = field(default=())  # everything else, paths from the model's root


@lru_cache(maxsize=8)  # the planner's searches ask for the same model's tree hundreds of times
def module_tree(arch: Architecture) -> ModuleTree:
    naming = NAMINGS.get(arch.model_type, Naming())
    return ModuleTree(
        blocks_path=naming.blocks,
        blocks=tuple(_block(arch, naming, index) for index in range(arch.num_layers)),
        outside=_outside(arch, naming),
    )


@dataclass(frozen=True)
class FreezeSelection:
    """What method `freeze` trains, as the memory estimate needs it."""

    parameters: int  # trained parameters; a tied weight counts once
    matrices: int  # elements of the trained weight matrices inside the blocks (what autocast copies)
    blocks: frozenset[int]  # decoder blocks in which anything trains
    embedding: bool  # the token embedding trains: gradients then flow through every block
    head: bool  # the output head's weight trains (itself, or the embedding it is tied to)


def freeze_selection(
    arch: Architecture,
    trainable_layers: int,
    trainable_modules: str | Sequence[str],
    extra_modules: Sequence[str],
    blocks: Sequence[int] = (),
) -> FreezeSelection:
    """The named modules of the top `trainable_layers` blocks (or of `blocks`, [llama_pro]'s copies, in their
    place), and the named modules outside the blocks.

    Names match the last part of a module's path, and a module brings everything inside it, as in
    `ftc.runtime.model.freeze.freeze_all_but`; a name that matches nothing is refused, as there.
    """
    tree, naming = module_tree(arch), NAMINGS.get(arch.model_type, Naming())
    trained: dict[object, Module] = {}
    first = arch.num_layers - min(trainable_layers, arch.num_layers)
    for index in blocks or range(first, arch.num_layers):
        block = tree.blocks[index]
        if trainable_modules != "all":
            _check_names(trainable_modules, block, "freeze.trainable_modules", f"in decoder block {index}", arch)
        for module in block:
            if trainable_modules == "all" or set(module.names) & set(trainable_modules):
                trained[(index, module.path)] = module
    if extra_modules:
        # The modules that hold the blocks (model, transformer) are outside them too, and bring them along.
        enclosing = tree.blocks_path.split(".")[:-1]
        _check_names(extra_modules, tree.outside, "freeze.extra_modules", "outside the decoder blocks", arch, enclosing)
        for module in tree.outside:
            if set(module.names) & set(extra_modules):
                trained[module.same_as or module.path] = module
        if set(enclosing) & set(extra_modules):
            for index, block in enumerate(tree.blocks):
                trained.update({(index, module.path): module for module in block})
    head = next(module for module in tree.outside if module.path == naming.head)
    return FreezeSelection(
        parameters=sum(module.parameters for module in trained.values()),
        matrices=sum(module.matrix for key, module in trained.items() if isinstance(key, tuple)),
        blocks=frozenset(key[0] for key, module in trained.items() if isinstance(key, tuple) and module.parameters),
        embedding=naming.embedding in trained,
        head=(head.same_as or head.path) in trained,
    )


def _check_names(
    wanted: Sequence[str],
    modules: Sequence[Module],
    key: str,
    where: str,
    arch: Architecture,
    also: Sequence[str] = (),
) -> None:
    known = {name for module in modules for name in module.names} | set(also)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise FtcError(
            f"{key} names no module called {', '.join(map(repr, unknown))} {where} of a {arch.model_type} model",
            f"choose from: {', '.join(sorted(known))}",
        )


def _block(arch: Architecture, naming: Naming, index: int) -> tuple[Module, ...]:
    family = family_of(arch)
    hidden, q, kv = arch.hidden_size, arch.q_width, arch.kv_width

    def named(ours: str) -> str:
        return family.module_names.get(ours, ours)

    attention = naming.attention
    qkv_bias = arch.attention_bias in ("qkv", "all")
    modules: list[Module] = []
    if family.fused_qkv:
        modules.append(_linear(f"{attention}.{named('qkv_proj')}", hidden, q + 2 * kv, qkv_bias))
    else:
        for name, width in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            modules.append(_linear(f"{attention}.{named(name)}", hidden, width, qkv_bias))
    modules.append(_linear(f"{attention}.{named('o_proj')}", q, hidden, arch.attention_bias == "all"))
    if arch.qk_norm == "per_head":
        modules += [Module(f"{attention}.q_norm", norm_size(arch, arch.head_dim))]
        modules += [Module(f"{attention}.k_norm", norm_size(arch, arch.head_dim))]
    elif arch.qk_norm == "across_heads":
        modules += [
            Module(f"{attention}.q_norm", norm_size(arch, q)),
            Module(f"{attention}.k_norm", norm_size(arch, kv)),
        ]
    modules += [Module(f"{attention}.{name}", 0) for name in naming.in_attention]

    if arch.is_sparse(index) and arch.moe is not None:
        moe, mlp = arch.moe, naming.mlp
        # Routed experts are stacked 3-D tensors of one module; the router is the block's `gate`.
        modules.append(Module(f"{mlp}.gate", moe.num_experts * hidden))
        experts = moe.num_experts * 3 * hidden * moe.expert_intermediate_size
        modules.append(Module(f"{mlp}.experts", experts, matrix=experts))
        modules.append(Module(f"{mlp}.experts.{naming.activation}", 0))
        if moe.shared_expert_intermediate_size:
            modules += _mlp(arch, naming, f"{mlp}.shared_expert", moe.shared_expert_intermediate_size, biased=False)
        if moe.shared_expert_gate:
            modules.append(_linear(f"{mlp}.shared_expert_gate", hidden, 1, biased=False))
    else:
        modules += _mlp(arch, naming, naming.mlp, arch.intermediate_size, arch.mlp_bias)

    modules += [Module(name, norm_size(arch)) for name in _block_norms(arch, naming)]
    modules += [Module(name, 0) for name in naming.in_block]
    return tuple(modules)


def _mlp(arch: Architecture, naming: Naming, path: str, width: int, biased: bool) -> list[Module]:
    family, hidden = family_of(arch), arch.hidden_size

    def linear(ours: str, in_features: int, out_features: int) -> Module:
        return _linear(f"{path}.{family.module_names.get(ours, ours)}", in_features, out_features, biased)

    if arch.mlp == "plain":
        layers = [linear("up_proj", hidden, width), linear("down_proj", width, hidden)]
    elif family.fused_gate_up:
        layers = [linear("gate_up_proj", hidden, 2 * width), linear("down_proj", width, hidden)]
    else:
        layers = [
            linear("gate_proj", hidden, width),
            linear("up_proj", hidden, width),
            linear("down_proj", width, hidden),
        ]
    return layers + ([Module(f"{path}.{naming.activation}", 0)] if naming.activation else [])


def _linear(path: str, in_features: int, out_features: int, biased: bool) -> Module:
    matrix = in_features * out_features
    return Module(path, matrix + out_features * biased, matrix=matrix)


def _block_norms(arch: Architecture, naming: Naming) -> tuple[str, ...]:
    if arch.model_type != "falcon":
        return naming.norms
    # Falcon: one pre-norm shared by parallel attention and MLP, a pre-norm each (the 40B/180B layout),
    # or the sequential block's two.
    if not arch.parallel_attention:
        return ("input_layernorm", "post_attention_layernorm")
    return ("ln_attn", "ln_mlp") if arch.norms_per_layer == 2 else ("input_layernorm",)


def _outside(arch: Architecture, naming: Naming) -> tuple[Module, ...]:
    embedding = arch.vocab_size * arch.hidden_size
    modules = [Module(naming.embedding, embedding)]
    if arch.embedding_norm:
        modules.append(Module(naming.embedding_norm, norm_size(arch)))
    if naming.rotary:
        modules.append(Module(naming.rotary, 0))
    if arch.final_norm:
        modules.append(Module(naming.final_norm, norm_size(arch)))
    tied = naming.embedding if arch.tied_embeddings else None
    modules.append(Module(naming.head, embedding, same_as=tied))
    return tuple(modules)
