"""How close the memory estimate comes to real training steps: small real models, trained on the CPU.

Each point builds a decoder from a config (random weights), wraps it as ftc's runtime does (LoRA through
peft, trl's fused loss head where the point says so, checkpointing as trl enables it), and runs training
steps as the HF Trainer does: the forward under autocast, the backward, gradient clipping, fused AdamW,
zero_grad. The first step creates the optimizer's moments; the peak of the next is measured by
counting live tensor storages (each once) after every aten op, including those autograd runs in the
backward, and again from the CPU allocator's own records (torch.profiler), which would also see memory
an op uses internally. That peak is compared with `estimate_memory(...).allocated_gib` minus the
context (none on the CPU). The "step" columns leave out what is held between steps (weights, moments),
whose counts are exact, so they test the activation and logits formulas alone.

On the CPU, torch's SDPA runs its flash-style kernel (`_scaled_dot_product_flash_attention_for_cpu`):
no seq × seq scores, but with a padded batch it keeps the float bias it made of the boolean mask,
batch × seq² per layer. The CUDA estimate assumes the memory-efficient kernel, which takes and keeps the
same bias (FlashAttention proper takes no mask). What the CPU cannot show is left to the libraries'
code: FlashAttention-2, Triton's fused loss kernel and the CUDA caching allocator. One CPU-only layout
effect is left unmodelled: the CPU kernel lays its output out like its query, so Phi-3's partial-rotary
`cat` makes o_proj copy it (about 2 % at the phi3 point).

With `--device cuda` it runs the GPU matrix instead: models of 0.5 to 3 billion parameters in the shapes
of published checkpoints, built from config with random weights (nothing is downloaded), trained in bf16
as ftc's runtime trains them. There the peak is torch.cuda.max_memory_allocated over the steady-state
step, compared with the allocated estimate minus the CUDA context (which the allocator does not see),
and torch.cuda.max_memory_reserved is compared with the reserved estimate minus the context.

Prints a table and writes JSON (default benchmarks/results/memory_accuracy_DEVICE.json). It measures; it
does not assert.

    python benchmarks/memory_accuracy.py [--device cpu|cuda] [--only NAME ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import write_report  # noqa: E402
from ftc.compiler.architectures import architecture_from_config  # noqa: E402
from ftc.compiler.memory.estimate import MemoryInputs, estimate_memory  # noqa: E402
from ftc.compiler.memory.states import model_states  # noqa: E402
from ftc.compiler.params import lora_target_modules  # noqa: E402

CPU = torch.profiler.ProfilerActivity.CPU
GIB = 1024**3
GOAL_MEDIAN, GOAL_MAX = 0.10, 0.20


class LiveStoragePeak(TorchDispatchMode):
    """The peak, over a run of aten ops, of the bytes held by live tensor storages.

    Every op's output storages are registered once (views share their storage) with a weak reference
    whose callback subtracts them when the storage dies, so the running total is what is allocated.
    Storages alive before tracking starts are passed as roots.
    """

    def __init__(self, roots: list[torch.Tensor]):
        super().__init__()
        self._live: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}
        self.current = self.peak = 0
        for tensor in roots:
            self._register(tensor)
        self.peak = self.current

    def reset_peak(self) -> None:
        self.peak = self.current

    def _register(self, tensor: object) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        key = storage._cdata  # the StorageImpl's address: one entry however many views share it
        if key in self._live:
            return
        size = storage.nbytes()
        self._live[key] = size
        self.current += size
        self._refs[key] = weakref.ref(storage, lambda _ref, key=key: self._forget(key))
        self.peak = max(self.peak, self.current)

    def _forget(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)
        self._refs.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            self._register(tensor)
        return out


@dataclass(frozen=True)
class Point:
    name: str
    model: str  # llama | qwen2 | llama-wide-vocab
    method: str  # full | freeze | lora | qlora
    precision: str  # fp32 | bf16
    attention: str  # sdpa | eager
    checkpointing: bool
    micro_batch_size: int
    seq_len: int
    fused_loss: bool = False  # trl's fused head, as ftc's SFT runtime trains
    accumulation: int = 1  # micro-batches per optimizer step
    lora_dropout: float = 0.0
    bits: int = 4  # qlora: bitsandbytes NF4 (double quantization) or LLM.int8
    strategy: str = "single"  # single | ddp (one gloo process: DDP's buckets are what is measured)
    attention_group: int | None = None  # train.shift_attention's group: ftc's shifted sparse attention over sdpa


MODELS = {
    # Llama-style: grouped-query attention, gated MLP, untied head.
    "llama": dict(
        model_type="llama",
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        vocab_size=8192,
        tie_word_embeddings=False,
    ),
    # Qwen2-style: q/k/v biases, tied embeddings, a wider vocabulary and two key-value heads.
    "qwen2": dict(
        model_type="qwen2",
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        vocab_size=16384,
        tie_word_embeddings=True,
    ),
    # Narrow and shallow with a 32k vocabulary: the logits dominate, as in Llama 3 or Qwen at short rows.
    "llama-wide-vocab": dict(
        model_type="llama",
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),
    # Other families, for layouts the Llama points do not exercise: per-head QK-norm (Qwen3), fused
    # qkv and gate_up projections (Phi-3), LayerNorm with a plain GELU MLP (StarCoder2), and Gemma's
    # (1 + weight) RMSNorm with a GeGLU MLP and tied embeddings.
    "qwen3": dict(
        model_type="qwen3",
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=64,
        vocab_size=8192,
        tie_word_embeddings=True,
    ),
    "phi3": dict(
        model_type="phi3",
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=6,
        vocab_size=8192,
        tie_word_embeddings=False,
    ),
    "starcoder2": dict(
        model_type="starcoder2",
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        vocab_size=8192,
        tie_word_embeddings=True,
    ),
    "gemma": dict(
        model_type="gemma",
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=96,
        vocab_size=8192,
    ),
    # Small enough for the CPU's slow bf16 kernels.
    "llama-small": dict(
        model_type="llama",
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=4096,
        tie_word_embeddings=False,
    ),
}

# fmt: off
POINTS = (
    Point("full-fp32-sdpa",            "llama", "full", "fp32", "sdpa",  False, 2, 256),
    Point("full-fp32-sdpa-ckpt",       "llama", "full", "fp32", "sdpa",  True,  4, 512),
    Point("full-fp32-eager",           "llama", "full", "fp32", "eager", False, 2, 256),
    Point("full-fp32-sdpa-fused",      "llama", "full", "fp32", "sdpa",  False, 4, 512, fused_loss=True),
    Point("full-fp32-accumulate",      "qwen2", "full", "fp32", "sdpa",  False, 2, 256, accumulation=2),
    Point("full-fp32-ddp",             "llama", "full", "fp32", "sdpa",  False, 2, 256, strategy="ddp"),
    Point("full-fp32-wide-vocab",      "llama-wide-vocab", "full", "fp32", "sdpa", False, 4, 256),
    Point("full-bf16-sdpa",            "llama-small", "full", "bf16", "sdpa", False, 2, 128),
    Point("full-bf16-eager-ckpt",      "llama-small", "full", "bf16", "eager", True, 2, 128),
    Point("lora-fp32-sdpa",            "llama", "lora", "fp32", "sdpa",  False, 4, 512),
    Point("lora-fp32-shift",           "llama", "lora", "fp32", "sdpa",  False, 4, 512, attention_group=128),
    Point("full-fp32-shift",           "llama", "full", "fp32", "sdpa",  False, 2, 256, attention_group=64),
    Point("lora-fp32-sdpa-ckpt-fused", "llama", "lora", "fp32", "sdpa",  True,  4, 512, fused_loss=True),
    Point("lora-fp32-eager",           "llama", "lora", "fp32", "eager", False, 2, 512),
    Point("lora-fp32-eager-ckpt",      "qwen2", "lora", "fp32", "eager", True,  2, 512),
    Point("lora-fp32-long",            "qwen2", "lora", "fp32", "sdpa",  False, 2, 1024),
    Point("lora-fp32-wide-vocab-fused", "llama-wide-vocab", "lora", "fp32", "sdpa", False, 4, 256, fused_loss=True),
    Point("lora-fp32-dropout",         "llama", "lora", "fp32", "sdpa",  False, 4, 256, lora_dropout=0.1),
    Point("lora-bf16-sdpa",            "llama-small", "lora", "bf16", "sdpa", False, 4, 128),
    Point("lora-bf16-sdpa-ckpt-fused", "llama-small", "lora", "bf16", "sdpa", True, 4, 128, fused_loss=True),
    Point("freeze-fp32-sdpa",          "llama", "freeze", "fp32", "sdpa", False, 8, 256),
    Point("freeze-bf16-sdpa",          "llama-small", "freeze", "bf16", "sdpa", False, 4, 128),
    Point("lora-fp32-eager-2k",        "llama-small", "lora", "fp32", "eager", False, 1, 2048),
    Point("qwen3-full-fp32-sdpa",      "qwen3", "full", "fp32", "sdpa",  False, 2, 512),
    Point("qwen3-lora-fp32-sdpa-ckpt", "qwen3", "lora", "fp32", "sdpa",  True,  4, 512),
    Point("phi3-full-fp32-eager",      "phi3", "full", "fp32", "eager",  False, 2, 256),
    Point("phi3-lora-fp32-sdpa",       "phi3", "lora", "fp32", "sdpa",   False, 4, 512),
    Point("starcoder2-full-fp32-sdpa", "starcoder2", "full", "fp32", "sdpa", False, 2, 512),
    Point("starcoder2-lora-fp32-sdpa", "starcoder2", "lora", "fp32", "sdpa", False, 4, 512),
    Point("gemma-full-fp32-sdpa",      "gemma", "full", "fp32", "sdpa",  False, 2, 512),
    Point("gemma-lora-fp32-eager",     "gemma", "lora", "fp32", "eager", False, 2, 512),
    Point("qlora-bf16-sdpa",           "llama-small", "qlora", "bf16", "sdpa", False, 4, 128),
    Point("qlora8-bf16-sdpa-ckpt",     "llama-small", "qlora", "bf16", "sdpa", True, 4, 128, bits=8),
)
# fmt: on

# Shapes of published checkpoints (their config.json), for the GPU matrix.
GPU_MODELS = {
    "qwen2.5-0.5b": dict(
        model_type="qwen2",
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "llama-3.2-1b": dict(
        model_type="llama",
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "qwen2.5-1.5b": dict(
        model_type="qwen2",
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "llama-3.2-3b": dict(
        model_type="llama",
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
}
MODELS.update(GPU_MODELS)

# fmt: off
GPU_POINTS = (
    Point("gpu-1b-full-bf16",            "llama-3.2-1b", "full", "bf16", "sdpa",  False, 4, 1024),
    Point("gpu-1b-full-bf16-ckpt",       "llama-3.2-1b", "full", "bf16", "sdpa",  True,  8, 2048),
    Point("gpu-1b-full-bf16-fused",      "llama-3.2-1b", "full", "bf16", "sdpa",  False, 8, 1024, fused_loss=True),
    Point("gpu-0.5b-full-bf16-eager",    "qwen2.5-0.5b", "full", "bf16", "eager", False, 4, 512),
    Point("gpu-1.5b-full-bf16-ckpt",     "qwen2.5-1.5b", "full", "bf16", "sdpa",  True,  4, 2048),
    Point("gpu-3b-full-bf16-ckpt-fused", "llama-3.2-3b", "full", "bf16", "sdpa",  True,  2, 1024, fused_loss=True),
    Point("gpu-1b-lora-bf16",            "llama-3.2-1b", "lora", "bf16", "sdpa",  False, 8, 1024),
    Point("gpu-1b-lora-bf16-ckpt-fused", "llama-3.2-1b", "lora", "bf16", "sdpa",  True,  8, 4096, fused_loss=True),
    Point("gpu-1.5b-lora-bf16-eager",    "qwen2.5-1.5b", "lora", "bf16", "eager", False, 2, 1024),
    Point("gpu-3b-lora-bf16",            "llama-3.2-3b", "lora", "bf16", "sdpa",  False, 4, 1024),
    Point("gpu-3b-lora-bf16-ckpt",       "llama-3.2-3b", "lora", "bf16", "sdpa",  True,  4, 2048),
    Point("gpu-1b-freeze-bf16",          "llama-3.2-1b", "freeze", "bf16", "sdpa", False, 8, 1024),
    Point("gpu-1b-qlora4-bf16",          "llama-3.2-1b", "qlora", "bf16", "sdpa", False, 4, 1024),
    Point("gpu-3b-qlora4-bf16-ckpt",     "llama-3.2-3b", "qlora", "bf16", "sdpa", True,  4, 2048),
    Point("gpu-1.5b-qlora8-bf16",        "qwen2.5-1.5b", "qlora", "bf16", "sdpa", False, 4, 1024, bits=8),
    Point("gpu-1b-lora-bf16-accumulate", "llama-3.2-1b", "lora", "bf16", "sdpa",  False, 4, 1024, accumulation=2),
)
# fmt: on

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FREEZE_TRAINABLE_LAYERS = 2


def build_model(point: Point, folder: Path, device: str = "cpu") -> torch.nn.Module:
    """The model as ftc's runtime would hold it, from a config with random weights, on `device`."""
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    shape = dict(MODELS[point.model])
    special = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    config = AutoConfig.for_model(shape.pop("model_type"), **shape, max_position_embeddings=4096, **special)
    torch.manual_seed(0)
    # ftc loads the frozen base of LoRA in the plan's precision and full fine-tuning in fp32.
    dtype = DTYPES[point.precision] if point.method != "full" else torch.float32
    attention = point.attention
    if point.attention_group:
        from ftc.runtime.model.shift_attention import register_shifted_attention

        attention = register_shifted_attention(point.attention_group)
    with torch.device(device):  # drawn where it trains: a 3B model's random init on the CPU takes minutes
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attention)
    if point.method == "qlora":
        # Quantization happens while loading, so the random model goes through a folder, as a checkpoint would.
        model.save_pretrained(folder)
        del model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
        quantization = BitsAndBytesConfig(
            load_in_4bit=point.bits == 4,
            load_in_8bit=point.bits == 8,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            quantization_config=quantization,
            dtype=dtype,
            device_map={"": torch.device(device, 0) if device == "cuda" else device},
            attn_implementation=point.attention,
        )
    if point.method == "freeze":
        # The top blocks train, upcast to fp32 as LLaMA-Factory does; everything else stays frozen.
        model.requires_grad_(False)
        for block in model.model.layers[-FREEZE_TRAINABLE_LAYERS:]:
            block.float().requires_grad_(True)
    if point.fused_loss:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # what trl's SFTTrainer installs
    if point.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        # lora.target = "all": every linear layer but the head, by the model's own names
        targets = list(lora_target_modules(architecture_from_config(MODELS[point.model]), "all"))
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=point.lora_dropout, target_modules=targets)
        model = get_peft_model(model, lora)
        if point.method == "qlora":
            for parameter in model.parameters():  # trl casts a quantized model's adapter to bf16
                if parameter.requires_grad:
                    parameter.data = parameter.data.to(torch.bfloat16)
    if point.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if point.method in ("lora", "qlora"):
            model.enable_input_require_grads()  # as trl does for peft models
    model.train()
    return model


def make_batch(point: Point, vocab: int, seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Right-padded rows of random tokens, one row shorter than the rest, labels -100 on the padding."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (point.micro_batch_size, point.seq_len), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, -max(point.seq_len // 8, 1) :] = 0
    batch = {
        "input_ids": ids.masked_fill(mask == 0, 0),
        "attention_mask": mask,
        "labels": ids.masked_fill(mask == 0, -100),
    }
    return {name: tensor.to(device) for name, tensor in batch.items()}


def training_step(model, optimizer, batches, point: Point, device: str = "cpu") -> None:
    """One optimizer step over `batches`, as transformers' Trainer (with accelerate) runs it."""
    bf16 = point.precision == "bf16"
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    for batch in batches:
        with autocast:
            if point.fused_loss:
                loss = model(**batch, use_cache=False, fused_lm_head=True).loss
            else:
                loss = model(**batch, use_cache=False).loss
        (loss / len(batches)).backward()
        del loss
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class Measured:
    peak: float  # GiB of live tensor storages at the step's peak
    held: float  # GiB alive when the step starts: weights, moments, batches (and DDP's buckets)
    allocator: float  # CPU: the peak again, from the allocator's records (torch.profiler); CUDA: the reserved peak


def measure(point: Point) -> Measured:
    """Memory of a steady-state optimizer step: its second one, after the first has created the moments."""
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(point, Path(folder))
    trainable = [p for p in model.parameters() if p.requires_grad]
    vocab = MODELS[point.model]["vocab_size"]
    batches = [make_batch(point, vocab, seed) for seed in range(point.accumulation)]
    gc.collect()
    # Every tensor alive now is a root: parameters, buffers, the batches, and what bitsandbytes keeps
    # beside its packed weights (block scales), which are neither parameters nor buffers.
    with warnings.catch_warnings():  # isinstance() wakes deprecated module attributes that warn
        warnings.simplefilter("ignore", FutureWarning)
        roots = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    with LiveStoragePeak(roots) as tracker:
        del roots
        if point.strategy == "ddp":
            model = _distributed(model)  # DDP allocates its gradient buckets here, in view of the tracker
        optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True)  # the Trainer's adamw_torch_fused
        # The first step creates the moments; DDP rebuilds its buckets in the order gradients arrived
        # during its second, so a DDP point warms up one step more.
        for _ in range(2 if point.strategy == "ddp" else 1):
            training_step(model, optimizer, batches, point)
        held = tracker.current
        tracker.reset_peak()
        with _quiet_stderr(), torch.profiler.profile(activities=[CPU], profile_memory=True) as profile:
            training_step(model, optimizer, batches, point)
    return Measured(tracker.peak / GIB, held / GIB, (held + _allocator_rise(profile)) / GIB)


def measure_cuda(point: Point) -> Measured:
    """The same steady-state step on a GPU, measured by the caching allocator's own statistics: the
    allocated peak (what tensors held) and the reserved peak (what the allocator took from the driver)."""
    gc.collect()
    torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(point, Path(folder), "cuda")
    trainable = [p for p in model.parameters() if p.requires_grad]
    vocab = MODELS[point.model]["vocab_size"]
    batches = [make_batch(point, vocab, seed, "cuda") for seed in range(point.accumulation)]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
    training_step(model, optimizer, batches, point, "cuda")  # creates the moments
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    training_step(model, optimizer, batches, point, "cuda")
    torch.cuda.synchronize()
    measured = Measured(torch.cuda.max_memory_allocated() / GIB, held / GIB, torch.cuda.max_memory_reserved() / GIB)
    del model, optimizer, trainable, batches
    gc.collect()
    torch.cuda.empty_cache()
    return measured


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler's start and stop lines, which its C++ side writes straight to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _allocator_rise(profile) -> int:
    """The highest the allocator's running total rose above its start, from the profiler's memory events."""
    events = sorted((e for e in profile.profiler.kineto_results.events() if e.name() == "[memory]"), key=_start)
    total = highest = 0
    for event in events:
        total += event.nbytes()
        highest = max(highest, total)
    return highest


def _start(event) -> int:
    return event.start_ns()


def _distributed(model: torch.nn.Module) -> torch.nn.Module:
    """DDP over one gloo process, joined through a file: enough for DDP to build its buckets."""
    import torch.distributed as dist

    if not dist.is_initialized():
        store = dist.FileStore(tempfile.mkstemp(prefix="ftc-ddp-")[1], 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    return torch.nn.parallel.DistributedDataParallel(model)


def memory_inputs(point: Point, capacity_gib: float | None = None) -> MemoryInputs:
    return MemoryInputs(
        arch=architecture_from_config(MODELS[point.model]),
        method=point.method,
        stage="sft",
        precision=point.precision,
        micro_batch_size=point.micro_batch_size,
        seq_len=point.seq_len,
        gradient_checkpointing=point.checkpointing,
        quantization_bits=point.bits if point.method == "qlora" else None,
        attention=point.attention,
        fused_cross_entropy=point.fused_loss,
        strategy=point.strategy,
        gradient_accumulation=point.accumulation > 1,
        lora_dropout=point.lora_dropout,
        freeze_trainable_layers=FREEZE_TRAINABLE_LAYERS,
        capacity_gib=capacity_gib,  # None on the CPU: no context, reserved = allocated
        attention_group=point.attention_group,
    )


def estimate(point: Point, capacity_gib: float | None = None) -> tuple[float, float, float]:
    """(peak, held between steps, reserved peak) in GiB, without the context that no allocator sees: the
    allocated estimate, its weights, adapters and moments, and the reserved estimate."""
    inputs = memory_inputs(point, capacity_gib)
    result = estimate_memory(inputs)
    states = model_states(
        inputs.arch, inputs.method, inputs.precision, inputs.strategy, inputs.world_size, inputs.offload,
        inputs.optimizer, inputs.quantization_bits, inputs.lora_rank, inputs.adapter_targets, FREEZE_TRAINABLE_LAYERS,
    )  # fmt: skip
    held = states.weights + states.adapters + states.optimizer + states.master_weights + states.ddp_buckets
    context = result.terms["context"]
    return result.allocated_gib - context, held / GIB, result.reserved_gib - context


def _versions(*names: str) -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the steps run")
    parser.add_argument("--only", nargs="*", help="run only the points with these names")
    parser.add_argument("--out", type=Path, help="the JSON report (default results/memory_accuracy_DEVICE.json)")
    args = parser.parse_args()
    on_gpu = args.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    out = args.out or Path(__file__).parent / "results" / f"memory_accuracy_{args.device}.json"
    # On a GPU the estimate is told the card's capacity, so that it adds the caching allocator's slack.
    capacity = torch.cuda.get_device_properties(0).total_memory / GIB if on_gpu else None

    rows = []
    last = ("reserved", "peak", 9) if on_gpu else ("allocator", "peak", 9)
    columns = [("estimate", "", 9), ("measured", "", 9), ("", "error", 7), ("step", "estimate", 9),
               ("step", "measured", 9), ("step", "error", 7), last]  # fmt: skip
    if on_gpu:
        columns += [("reserved", "estimate", 9), ("reserved", "error", 8)]
    print(f"{'':28s} " + " ".join(f"{top:>{width}s}" for top, _, width in columns))
    print(f"{'point (MiB)':28s} " + " ".join(f"{bottom:>{width}s}" for _, bottom, width in columns))
    for point in GPU_POINTS if on_gpu else POINTS:
        if args.only and point.name not in args.only:
            continue
        start = time.perf_counter()
        try:
            measured = measure_cuda(point) if on_gpu else measure(point)
        except Exception as error:
            if point.method != "qlora" or on_gpu:
                raise
            # bitsandbytes' CPU backend may lack a kernel this point needs: say so and go on
            print(f"{point.name:28s} skipped: {type(error).__name__}: {error}")
            rows.append({**asdict(point), "skipped": f"{type(error).__name__}: {error}"})
            continue
        estimated, estimated_held, estimated_reserved = estimate(point, capacity)
        error = (estimated - measured.peak) / measured.peak
        # The step's own memory (activations, logits, gradients) without the states held between steps,
        # which are exact counts: a harder test of the activation formulas.
        step_estimated, step_measured = estimated - estimated_held, measured.peak - measured.held
        step_error = (step_estimated - step_measured) / step_measured
        line = (
            f"{point.name:28s} {estimated * 1024:9.1f} {measured.peak * 1024:9.1f} {error:+7.1%} "
            f"{step_estimated * 1024:9.1f} {step_measured * 1024:9.1f} {step_error:+7.1%} "
            f"{measured.allocator * 1024:9.1f}"
        )
        row = {
            **asdict(point),
            "estimate_gib": estimated,
            "measured_gib": measured.peak,
            "error": error,
            "step_estimate_gib": step_estimated,
            "step_measured_gib": step_measured,
            "step_error": step_error,
        }
        if on_gpu:
            reserved_error = (estimated_reserved - measured.allocator) / measured.allocator
            line += f" {estimated_reserved * 1024:9.1f} {reserved_error:+8.1%}"
            row |= {
                "reserved_estimate_gib": estimated_reserved,
                "reserved_measured_gib": measured.allocator,
                "reserved_error": reserved_error,
            }
        else:
            row["allocator_measured_gib"] = measured.allocator
        print(f"{line}   ({time.perf_counter() - start:.0f} s)", flush=True)
        rows.append(row)

    def spread(key: str) -> tuple[float | None, float | None]:
        values = [abs(row[key]) for row in rows if key in row]
        return (statistics.median(values), max(values)) if values else (None, None)

    (median, worst), (step_median, step_worst) = spread("error"), spread("step_error")
    summary = {
        "median_abs_error": median,
        "max_abs_error": worst,
        "step_median_abs_error": step_median,
        "step_max_abs_error": step_worst,
        "goal": {"median_abs_error": GOAL_MEDIAN, "max_abs_error": GOAL_MAX},
    }
    if median is not None:
        print(f"peak:      median |error| {median:.1%}   max |error| {worst:.1%}")
        print(f"step only: median |error| {step_median:.1%}   max |error| {step_worst:.1%}")
    if on_gpu:
        summary["reserved_median_abs_error"], summary["reserved_max_abs_error"] = spread("reserved_error")
        if median is not None:
            print("reserved:  median |error| {:.1%}   max |error| {:.1%}".format(*spread("reserved_error")))
        measurement = (
            "torch.cuda.max_memory_allocated and max_memory_reserved over a steady-state optimizer step (after "
            "one warm-up step), against the estimate without the CUDA context"
        )
        device = {"gpu": torch.cuda.get_device_name(0), "capacity_gib": capacity, "cuda": torch.version.cuda}
    else:
        # The two measurements should agree: a gap would be memory an op allocates but never hands out.
        gaps = [abs(row["allocator_measured_gib"] - row["measured_gib"]) * 1024 for row in rows if "error" in row]
        summary["max_gap_live_tensors_vs_allocator_mib"] = max(gaps, default=None)
        if gaps:
            print(f"live tensors vs the allocator's records: at most {max(gaps):.2f} MiB apart")
        measurement = (
            "peak of live tensor storages over a steady-state optimizer step (after one warm-up step, two "
            "under DDP), by torch dispatch tracking, cross-checked against the CPU allocator's records "
            "(torch.profiler profile_memory)"
        )
        device = {}
    write_report(
        out,
        "memory_accuracy",
        torch=torch.__version__,
        libraries=_versions("transformers", "peft", "trl", "bitsandbytes"),
        measurement=measurement,
        **device,
        models={row["model"]: MODELS[row["model"]] for row in rows},
        points=rows,
        **summary,
    )


if __name__ == "__main__":
    main()
