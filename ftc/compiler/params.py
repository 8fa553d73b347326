"""Exact parameter counts of an architecture, and of the adapter (LoRA, OFT) a run would add to it.

The counts are those of the transformers implementation (or, for remote-code families, of the
model's own code): tied weights count once and buffers (rotary frequencies, ALiBi slopes) not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftc.compiler.model_families import family_of
from ftc.compiler.model_shapes import Architecture, Vision
from ftc.errors import FtcError

# A fused layer answers to the names of its parts, so a target list written for llama still means
# something on Phi-3 or Falcon: adapting any part of a fused layer adapts all of it.
_FUSED_PARTS = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


@dataclass(frozen=True)
class ParameterCount:
    embedding: int  # token embeddings
    attention: int  # q, k, v and output projections, with their biases
    mlp: int  # dense MLPs and shared experts: every token passes through them
    experts: int  # routed experts
    router: int  # expert routers and shared-expert gates
    norms: int  # every normalization weight and bias, QK-norms and the final norm included
    head: int  # output projection to the vocabulary; 0 when tied to the embedding
    per_layer: tuple[int, ...]  # each decoder block, in order: what one pipeline stage or FSDP unit holds
    active: int  # parameters one token uses: all but the routed experts it is not sent to
    vision: int = 0  # an image+text model's vision tower: patch and position embeddings, blocks, norms
    projector: int = 0  # what maps the tower's patches to language-model tokens (LLaVA's MLP, Qwen's merger)

    @property
    def total(self) -> int:
        language = self.embedding + self.attention + self.mlp + self.experts + self.router + self.norms + self.head
        return language + self.vision + self.projector

    @property
    def largest_layer(self) -> int:
        return max(self.per_layer, default=0)


@dataclass(frozen=True)
class Linear:
    """One kind of linear layer in the decoder blocks."""

    name: str  # the model's own module name, as peft's target_modules matches it
    in_features: int
    out_features: int
    count: int  # how many the whole model holds
    answers_to: frozenset[str]  # names a lora.target list may use for it

    def lora_parameters(self, rank: int) -> int:
        return self.count * rank * (self.in_features + self.out_features)


@dataclass(frozen=True)
class OftBlocks:
    """OFT (peft): each adapted layer's input is cut into blocks, and each block is turned by a rotation built
    (Cayley transform) from a trained skew-symmetric matrix, of which only the upper triangle is stored."""

    block_size: int  # 0 when `rank` sizes the blocks
    rank: int  # blocks per layer (peft's r); 0 when `block_size` sizes them
    shared: bool = False  # block_share: one rotation for all of a layer's blocks
    neumann_terms: int = 5  # terms of the Cayley–Neumann series; 0 for the exact transform (a solve per block)

    def split(self, linear: Linear) -> tuple[int, int]:
        """(blocks, block size) of one layer. peft silently picks another size when it does not divide the
        layer's input width; the plan refuses instead, so the adapter trained is the one the spec says."""
        width = linear.in_features
        size = self.block_size or width // self.rank
        if self.block_size and width % self.block_size:
            raise FtcError(
                f"oft.block_size = {self.block_size} does not divide the input width {width} of {linear.name}",
                f"choose a block size that divides {width} (e.g. {_divisor_near(width, self.block_size)}), or leave "
                f"{linear.name} out of oft.target",
            )
        if self.rank and width % self.rank:
            raise FtcError(
                f"oft.rank = {self.rank} does not divide the input width {width} of {linear.name}",
                f"choose a rank that divides {width} (e.g. {_divisor_near(width, self.rank)}), or leave "
                f"{linear.name} out of oft.target",
            )
        return width // size, size

    def parameters(self, linear: Linear) -> int:
        """Trained values per layer: each rotation's upper triangle, b(b-1)/2, for each block (or once, shared)."""
        blocks, size = self.split(linear)
        return linear.count * (1 if self.shared else blocks) * size * (size - 1) // 2


def _divisor_near(width: int, wanted: int) -> int:
    return min((d for d in range(2, width + 1) if width % d == 0), key=lambda d: (abs(d - wanted), d), default=width)


def count_parameters(arch: Architecture) -> ParameterCount:
    attention, norms = _attention(arch), _layer_norms(arch)
    dense_mlp = _mlp(arch, arch.intermediate_size, arch.mlp_bias)
    experts = active_experts = router = shared = 0  # per sparse block
    if arch.moe is not None:
        expert = _mlp(arch, arch.moe.expert_intermediate_size, biased=False)
        experts, active_experts = arch.moe.num_experts * expert, arch.moe.experts_per_token * expert
        router = arch.moe.num_experts * arch.hidden_size + (arch.hidden_size if arch.moe.shared_expert_gate else 0)
        shared = _mlp(arch, arch.moe.shared_expert_intermediate_size, biased=False)
    sparse = [arch.is_sparse(i) for i in range(arch.num_layers)]
    n_sparse, n_dense = sum(sparse), arch.num_layers - sum(sparse)
    embedding = arch.vocab_size * arch.hidden_size
    parts = {
        "embedding": embedding,
        "attention": arch.num_layers * attention,
        "mlp": n_dense * dense_mlp + n_sparse * shared,
        "experts": n_sparse * experts,
        "router": n_sparse * router,
        "norms": arch.num_layers * norms + norm_size(arch) * (arch.final_norm + arch.embedding_norm),
        "head": 0 if arch.tied_embeddings else embedding,
    }
    tower, projector = (
        (vision_tower_parameters(arch.vision), projector_parameters(arch.vision)) if arch.vision else (0, 0)
    )
    return ParameterCount(
        **parts,
        per_layer=tuple(attention + norms + (experts + router + shared if s else dense_mlp) for s in sparse),
        active=sum(parts.values()) - n_sparse * (experts - active_experts) + tower + projector,
        vision=tower,
        projector=projector,
    )


def _vision_norm(vision: Vision, width: int) -> int:
    return {"layer": 2, "rms": 1}[vision.norm] * width


def vision_tower_parameters(vision: Vision) -> int:
    """The tower as transformers builds it: every block linear biased, the patch convolution only in SigLIP."""
    h, i = vision.hidden_size, vision.intermediate_size
    patch = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2 * h + vision.patch_bias * h
    positions = 0
    if vision.learned_positions and vision.image_size is not None:
        positions = ((vision.image_size // vision.patch_size) ** 2 + vision.class_token) * h
    embeddings = patch + positions + vision.class_token * h
    attention = 4 * h * h + 4 * h  # q, k and v (one fused qkv in Qwen's towers: the same count) and the output
    mlp = 2 * h * i + i + h if vision.mlp == "plain" else 3 * h * i + 2 * i + h
    block = attention + mlp + 2 * _vision_norm(vision, h)
    outer_norms = (vision.pre_norm + vision.post_norm) * _vision_norm(vision, h)
    # a learned probe, a biased multi-head attention (q, k and v in one input projection, and the output),
    # a LayerNorm and a block's MLP
    head = (h + 4 * h * h + 4 * h + 2 * h + 2 * h * i + i + h) if vision.pooling_head else 0
    return embeddings + vision.num_layers * block + outer_norms + head


def projector_parameters(vision: Vision) -> int:
    """LLaVA's and Qwen's: two biased linears, the merged patches (or the concatenated feature layers) → the
    middle → the LM's width. Gemma 3's: one unbiased matrix from the averaged patch to the LM's width."""
    merged = vision.patches_per_token if vision.merge == "concat" else 1
    features = vision.hidden_size * merged * vision.feature_layers
    norm = {"layer": 2, "rms": 1}[vision.projector_norm] * vision.hidden_size if vision.projector_norm else 0
    if vision.projector == "matrix":
        return norm + features * vision.out_size
    middle, out = vision.projector_hidden, vision.out_size
    return norm + features * middle + middle + middle * out + out


def decoder_linears(arch: Architecture) -> tuple[Linear, ...]:
    """The linear layers inside the decoder blocks: what LoRA can adapt (the head and embeddings are not here).

    Routed experts are absent on purpose: transformers stores them as stacked 3-D tensors, not as
    linear layers, so peft's target_modules never reaches them; the same holds for MoE routers.
    """
    family = family_of(arch)
    hidden = arch.hidden_size
    layers: list[tuple[str, int, int, int]] = []  # (our name, in, out, count)

    if family.fused_qkv:
        layers.append(("qkv_proj", hidden, arch.q_width + 2 * arch.kv_width, arch.num_layers))
    else:
        layers.append(("q_proj", hidden, arch.q_width, arch.num_layers))
        layers.append(("k_proj", hidden, arch.kv_width, arch.num_layers))
        layers.append(("v_proj", hidden, arch.kv_width, arch.num_layers))
    layers.append(("o_proj", arch.q_width, hidden, arch.num_layers))

    n_sparse = sum(arch.is_sparse(i) for i in range(arch.num_layers))
    mlps = [(arch.intermediate_size, arch.num_layers - n_sparse)]
    if arch.moe is not None and arch.moe.shared_expert_intermediate_size:
        mlps.append((arch.moe.shared_expert_intermediate_size, n_sparse))
    for width, count in mlps:
        if not count:
            continue
        if arch.mlp == "plain":
            layers.append(("up_proj", hidden, width, count))
        elif family.fused_gate_up:
            layers.append(("gate_up_proj", hidden, 2 * width, count))
        else:
            layers.append(("gate_proj", hidden, width, count))
            layers.append(("up_proj", hidden, width, count))
        layers.append(("down_proj", width, hidden, count))
    if arch.moe is not None and arch.moe.shared_expert_gate and n_sparse:
        layers.append(("shared_expert_gate", hidden, 1, n_sparse))

    return tuple(
        Linear(
            name=family.module_names.get(ours, ours),
            in_features=in_features,
            out_features=out_features,
            count=count,
            answers_to=frozenset({ours, family.module_names.get(ours, ours), *_FUSED_PARTS.get(ours, ())}),
        )
        for ours, in_features, out_features, count in layers
    )


def lora_target_modules(arch: Architecture, targets: str | Sequence[str], key: str = "lora.target") -> tuple[str, ...]:
    """The model's own module names that a lora.target (or oft.target: `key`) selects, sorted."""
    return tuple(sorted({linear.name for linear in adapted_layers(arch, targets, key)}))


def lora_parameters(arch: Architecture, rank: int, targets: str | Sequence[str], blocks: int | None = None) -> int:
    """Parameters a LoRA adapter of this rank adds: rank × (in + out) for each adapted linear layer.

    `blocks`: how many blocks carry the adapter ([llama_pro]'s copies, in dense models, where each block holds
    each linear layer once); every block when None.
    """
    selected = adapted_layers(arch, targets)
    if blocks is None:
        return sum(linear.lora_parameters(rank) for linear in selected)
    return sum(rank * (linear.in_features + linear.out_features) * blocks for linear in selected)


def oft_parameters(arch: Architecture, blocks: OftBlocks, targets: str | Sequence[str]) -> int:
    """Parameters an OFT adapter adds: per adapted layer, b(b-1)/2 for each of its in/b blocks (once when shared)."""
    return sum(blocks.parameters(linear) for linear in adapted_layers(arch, targets, "oft.target"))


def adapted_layers(arch: Architecture, targets: str | Sequence[str], key: str = "lora.target") -> list[Linear]:
    """The decoder's linear layers that an adapter's target ("all", one name or a list, at `key`) selects."""
    linears = decoder_linears(arch)
    if targets == "all":
        return list(linears)
    wanted = {targets} if isinstance(targets, str) else set(targets)
    known = set().union(*(linear.answers_to for linear in linears))
    unknown = sorted(wanted - known)
    if unknown:
        raise FtcError(
            f"{key} names no linear layer called {', '.join(map(repr, unknown))} in a {arch.model_type} model",
            f'choose from: {", ".join(sorted(known))}, or "all"',
        )
    return [linear for linear in linears if linear.answers_to & wanted]


def _attention(arch: Architecture) -> int:
    q, kv, hidden = arch.q_width, arch.kv_width, arch.hidden_size
    weights = hidden * (q + 2 * kv) + q * hidden
    biases = {"none": 0, "qkv": q + 2 * kv, "all": q + 2 * kv + hidden}[arch.attention_bias]
    return weights + biases


def _mlp(arch: Architecture, width: int, biased: bool) -> int:
    hidden = arch.hidden_size
    if arch.mlp == "plain":
        return 2 * hidden * width + (width + hidden if biased else 0)
    return 3 * hidden * width + (2 * width + hidden if biased else 0)


def norm_size(arch: Architecture, width: int | None = None) -> int:
    """Parameters of one normalization over `width` channels (the hidden size unless given)."""
    per_channel = {"rms": 1, "layer": 2, "parameter_free": 0}[arch.norm]
    return per_channel * (arch.hidden_size if width is None else width)


def _layer_norms(arch: Architecture) -> int:
    qk = {
        "none": 0,
        "per_head": 2 * norm_size(arch, arch.head_dim),
        "across_heads": norm_size(arch, arch.q_width) + norm_size(arch, arch.kv_width),
    }[arch.qk_norm]
    return arch.norms_per_layer * norm_size(arch) + qk
