"""The optimizers: one record per `train.optimizer` value, holding everything the rest of ftc asks of it.

The spec reads which methods, strategies and settings section each one takes, the compiler how its states
are counted (`ftc.compiler.memory.states`), the runtime which library builds it (transformers by its `optim`
name, or one of ftc's builders in `ftc.runtime.optimizers` that hands the trainer the library's optimizer),
the lock and `ftc doctor` which package must be installed. Nothing outside this file and
`ftc.runtime.optimizers` branches on an optimizer's name (a test in the suite says so).

Records only, importing only the methods' records: the spec layer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftc.methods import METHODS

# How an optimizer's state is counted per trained parameter (ftc.compiler.memory.states.optimizer_state):
# - "adam": two moments in the trained parameters' dtype (fp32 partitions under DeepSpeed);
# - "adam_8bit": two uint8 moments with a block scale each (bitsandbytes);
# - "low_rank": GaLore/APOLLO: a rank-r projection of each target matrix's gradient, two moments of the
#   projected gradient (r × the longer side) and the projection (r × the shorter side); AdamW elsewhere;
# - "low_rank_8bit": the same with 8-bit projected moments;
# - "block": BAdam: the weights stay in the compute dtype; one decoder block at a time holds an fp32 copy,
#   its gradient and AdamW's moments;
# - "per_block_second_moment" (Adam-mini): Adam's first moment whole, one second moment per attention head,
#   output neuron or token;
# - "one_momentum" (Muon): one momentum buffer for each 2-D hidden matrix, AdamW's two moments for the rest.
StateModel = Literal[
    "adam", "adam_8bit", "low_rank", "low_rank_8bit", "block", "per_block_second_moment", "one_momentum"
]

ALL_METHODS = tuple(METHODS)
ALL_STRATEGIES = ("single", "ddp", "zero1", "zero2", "zero3", "fsdp")
# Strategies that keep every weight whole and named on each device (none shards or flattens them).
WHOLE_WEIGHTS = ("single", "ddp")


@dataclass(frozen=True)
class Optimizer:
    name: str
    summary: str
    states: StateModel
    library: str  # the package that implements it, as pip names it
    # transformers' TrainingArguments.optim name where transformers builds it; None: ftc's builder of the
    # same name in ftc.runtime.optimizers hands the trainer the library's optimizer (None for plain AdamW too)
    trainer_optim: str | None = None
    builder: bool = False  # ftc.runtime.optimizers builds it (the library's class, with ftc's grouping)
    extra: str | None = None  # the ftc extra (pyproject.toml) that installs its library
    section: str | None = None  # the spec section that configures it
    methods: tuple[str, ...] = ALL_METHODS  # the training methods it updates
    methods_why: str = ""  # why not the others (said after "train.optimizer = 'x'")
    strategies: tuple[str, ...] = ALL_STRATEGIES
    strategies_why: str = ""  # why not the others (said after "train.optimizer = 'x'")
    backends: tuple[str, ...] = ("cuda", "npu", "cpu")  # the device backends its library steps on
    backends_why: str = ""  # why not the others (said after "train.optimizer = 'x'")
    paper_saving: str = ""  # what its authors publish of its optimizer memory against AdamW's
    estimate_note: str = ""  # what the memory estimate assumes of it
    licence: str = ""  # said where its licence limits its use

    @property
    def whole_weights_only(self) -> bool:
        return set(self.strategies) <= set(WHOLE_WEIGHTS)

    @property
    def own_fp32_copy(self) -> bool:
        """It steps an fp32 copy of what trains itself, so the model is held in the compute dtype."""
        return self.states == "block"


def _registry(*optimizers: Optimizer) -> dict[str, Optimizer]:
    return {optimizer.name: optimizer for optimizer in optimizers}


_LOW_RANK_METHODS_WHY = (
    "projects the gradients of every weight matrix: ftc runs it for full fine-tuning (a LoRA adapter is low-rank "
    "already; freeze's few layers keep AdamW's states small)"
)
_LOW_RANK_STRATEGIES_WHY = (
    "projects each target matrix's whole 2-D gradient, which ZeRO and FSDP hand the optimizer as flat shards"
)
# What GaLore and APOLLO share: their packages, and what projecting whole matrices rules out.
_PROJECTING = {
    "extra": "optimizers",
    "methods": ("full",),
    "methods_why": _LOW_RANK_METHODS_WHY,
    "strategies": WHOLE_WEIGHTS,
    "strategies_why": _LOW_RANK_STRATEGIES_WHY,
}

# In the order of the spec language's train.optimizer values.
OPTIMIZERS: dict[str, Optimizer] = _registry(
    Optimizer(
        "adamw",
        "torch's AdamW (fused): two moments per trained parameter",
        "adam",
        library="torch",
        estimate_note="AdamW (torch, fused): two moments in the trained parameters' dtype",
    ),
    Optimizer(
        "adamw_8bit",
        "bitsandbytes' 8-bit AdamW: block-quantized moments",
        "adam_8bit",
        library="bitsandbytes",
        trainer_optim="adamw_8bit",
        extra="qlora",
        paper_saving="8-bit moments: 2 bytes per parameter for 8 (Dettmers et al., 2022)",
        estimate_note="8-bit AdamW (bitsandbytes): two uint8 moments with block scales",
    ),
    Optimizer(
        "paged_adamw_8bit",
        "bitsandbytes' 8-bit AdamW in paged memory, moved to the host when the device runs short",
        "adam_8bit",
        library="bitsandbytes",
        trainer_optim="paged_adamw_8bit",
        extra="qlora",
        estimate_note="paged 8-bit AdamW: counted on the device, where it lives until memory runs short",
    ),
    Optimizer(
        "galore_adamw",
        "GaLore: AdamW on a low-rank projection of each target matrix's gradient, the projection renewed every "
        "galore.update_proj_gap steps",
        "low_rank",
        library="galore-torch",
        trainer_optim="galore_adamw",
        section="galore",
        **_PROJECTING,
        paper_saving="optimizer states of a target m × n matrix (m ≤ n): mr + 2nr instead of 2mn (Zhao et al., 2024)",
        estimate_note="GaLore: rank-r moments and projection for the target matrices, AdamW's for the rest",
    ),
    Optimizer(
        "galore_adamw_8bit",
        "GaLore with bitsandbytes' 8-bit AdamW on the projected gradients",
        "low_rank_8bit",
        library="galore-torch",
        trainer_optim="galore_adamw_8bit",
        section="galore",
        **_PROJECTING,
        # Found by running it: galore-torch 1.0's 8-bit step synchronizes CUDA whatever the device.
        backends=("cuda",),
        backends_why="steps through galore-torch's 8-bit AdamW, which calls torch.cuda.synchronize() every step",
        paper_saving="GaLore's projected moments in 8 bits: Llama 7B pre-trained on one 24 GB GPU (Zhao et al., 2024)",
        estimate_note="8-bit GaLore: rank-r uint8 moments with block scales, fp32 projection",
    ),
    Optimizer(
        "apollo_adamw",
        "APOLLO: AdamW's moments on a random rank-r projection, used to scale the raw gradient per channel "
        "(or per tensor)",
        "low_rank",
        library="apollo-torch",
        trainer_optim="apollo_adamw",
        section="apollo",
        **_PROJECTING,
        paper_saving="SGD-like memory: rank-r (APOLLO) or rank-1 (APOLLO-Mini) moments (Zhu et al., 2025)",
        estimate_note="APOLLO: rank-r moments and random projection for the target matrices, AdamW's for the rest",
        licence="apollo-torch is released under CC BY-NC 4.0: non-commercial use only",
    ),
    Optimizer(
        "badam",
        "BAdam: block coordinate descent; one decoder block at a time trains with AdamW, switching every "
        "badam.switch_every steps",
        "block",
        library="badam",
        builder=True,
        extra="optimizers",
        section="badam",
        methods=("full",),
        methods_why="chooses the blocks that train itself, among all of the model's weights",
        strategies=("single",),
        strategies_why="changes which weights need gradients every few steps, which DDP's fixed reducer cannot "
        "follow; its ZeRO-3 mode rewires DeepSpeed's internals and is not supported by ftc",
        paper_saving="Llama-3-8B fine-tuned in full on one 24 GB GPU: the weights in half precision plus one "
        "block's fp32 copy, gradient and moments (Luo et al., 2024)",
        estimate_note="BAdam: weights in the compute dtype; the largest block's fp32 copy, gradient and moments",
    ),
    Optimizer(
        "adam_mini",
        "Adam-mini: Adam's first moment, and one second moment per attention head, output neuron or token",
        "per_block_second_moment",
        library="adam-mini",
        builder=True,
        extra="optimizers",
        methods=("full",),
        methods_why="partitions every weight matrix of the model by head and neuron: ftc runs it for full fine-tuning",
        strategies=WHOLE_WEIGHTS,
        strategies_why="partitions each weight by its name and shape, which ZeRO and FSDP flatten",
        paper_saving="45-50% less optimizer memory than AdamW (Zhang et al., 2024)",
        estimate_note="Adam-mini: a first moment per parameter, a second moment per head, neuron or token",
    ),
    Optimizer(
        "muon",
        "Muon: momentum orthogonalised by Newton-Schulz for the 2-D hidden matrices; AdamW for the embeddings, "
        "the output head, norms and biases",
        "one_momentum",
        library="torch",
        builder=True,
        section="muon",
        methods=("full",),
        methods_why="orthogonalises the updates of every hidden matrix of the model: ftc runs it for full fine-tuning",
        strategies=WHOLE_WEIGHTS,
        strategies_why="orthogonalises each hidden matrix whole, which ZeRO and FSDP split into shards",
        paper_saving="one momentum buffer per hidden matrix instead of AdamW's two (Jordan et al., 2024)",
        estimate_note="Muon: one momentum buffer per hidden matrix; AdamW's two moments for the rest",
    ),
)
