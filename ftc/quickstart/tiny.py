"""A tiny model, tokenizer and dataset built offline from code, for `ftc quickstart` and the tests.

Everything comes from a seeded generator of simple, learnable tasks, so the same seed gives the
same bytes, and a randomly initialised model of ~140k parameters visibly learns within a minute
on a CPU.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from ftc.spec.chat_templates import TEMPLATES

_WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "lamp", "garden", "music",
    "window", "pencil", "rocket", "forest", "candle", "bridge", "ocean", "paper",
)  # fmt: skip
_COLOURS = {
    "banana": "yellow", "lemon": "yellow", "grass": "green", "leaf": "green", "sky": "blue",
    "sea": "blue", "snow": "white", "milk": "white", "coal": "black", "night": "black",
    "tomato": "red", "cherry": "red", "carrot": "orange", "plum": "purple",
}  # fmt: skip

Task = Callable[[random.Random], tuple[str, str, str]]  # rng -> (instruction, input, output)


def _reverse_words(rng: random.Random) -> tuple[str, str, str]:
    words = rng.sample(_WORDS, rng.randint(3, 5))
    return "Reverse the order of the words.", " ".join(words), " ".join(reversed(words))


def _uppercase(rng: random.Random) -> tuple[str, str, str]:
    word = rng.choice(_WORDS)
    return "Write the word in capital letters.", word, word.upper()


def _add(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    return "Add the two numbers.", f"{a} + {b}", str(a + b)


def _repeat(rng: random.Random) -> tuple[str, str, str]:
    word, times = rng.choice(_WORDS), rng.randint(2, 4)
    return f"Repeat the word {times} times.", word, " ".join([word] * times)


def _colour(rng: random.Random) -> tuple[str, str, str]:
    thing = rng.choice(sorted(_COLOURS))
    return f"What colour is the {thing}?", "", f"The {thing} is {_COLOURS[thing]}."


TASKS: tuple[Task, ...] = (_reverse_words, _uppercase, _add, _repeat, _colour)

# Llama 3's names; the pad token is our own, since Llama 3 ships none.
SPECIAL_TOKENS = {
    "bos": "<|begin_of_text|>",
    "eos": "<|eot_id|>",  # the end of an assistant turn is where generation should stop
    "end_of_text": "<|end_of_text|>",
    "start_header": "<|start_header_id|>",
    "end_header": "<|end_header_id|>",
    "pad": "<|pad|>",
}


def tiny_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` alpaca records, each from a task of TASKS picked at random."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        instruction, input_text, output = rng.choice(TASKS)(rng)
        records.append({"instruction": instruction, "input": input_text, "output": output})
    return records


def write_tiny_alpaca(path: str | Path, n: int = 256, seed: int = 0) -> Path:
    """Write `n` generated records as an alpaca JSON list to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tiny_records(n, seed), indent=1) + "\n", encoding="utf-8")
    return path


# Replies a preference stage should learn to rank below a real answer. Every rejected reply is one
# of these, so the pairs are separable by design: a reward model or a policy can tell them apart
# within a few steps, and a test can ask for more than chance.
REFUSALS = ("I do not know.", "No.", "I cannot answer that.", "Ask me later.")


def tiny_preferences(n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` preference records (alpaca shape): the task's answer is chosen, a refusal rejected."""
    rng = random.Random(seed + 1)  # its own stream: the refusals drawn do not shift the tasks
    return [
        {"instruction": record["instruction"], "input": record["input"], "chosen": record["output"],
         "rejected": rng.choice(REFUSALS)}
        for record in tiny_records(n, seed)
    ]  # fmt: skip


def tiny_kto_examples(n: int, seed: int = 0) -> list[dict[str, object]]:
    """`n` unpaired KTO records, desirable and undesirable alternating: the answer (true) or a refusal (false)."""
    rng = random.Random(seed + 1)
    records: list[dict[str, object]] = []
    for index, record in enumerate(tiny_records(n, seed)):
        desirable = index % 2 == 0
        completion = record["output"] if desirable else rng.choice(REFUSALS)
        records.append({"instruction": record["instruction"], "input": record["input"], "completion": completion,
                        "label": desirable})  # fmt: skip
    return records


def write_tiny_preferences(path: str | Path, n: int = 128, seed: int = 0) -> Path:
    """Write `n` generated preference pairs as a JSON list to `path` (data format "preference")."""
    return _write_json(path, tiny_preferences(n, seed))


def write_tiny_kto(path: str | Path, n: int = 128, seed: int = 0) -> Path:
    """Write `n` generated KTO examples as a JSON list to `path` (data format "kto")."""
    return _write_json(path, tiny_kto_examples(n, seed))


def _write_json(path: str | Path, records: list) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return path


def _tokenizer_corpus(seed: int) -> list[str]:
    # The text a conversation renders to, minus the special tokens: BPE training does not skip
    # added tokens, so writing them here would only teach merges of their pieces.
    lines = ["system\n\nYou are a helpful assistant."]
    for record in tiny_records(2000, seed):
        prompt = "\n\n".join(part for part in (record["instruction"], record["input"]) if part)
        lines += [f"user\n\n{prompt}", f"assistant\n\n{record['output']}"]
    return lines


def train_tiny_tokenizer(lines: list[str], special_tokens: list[str], vocab_size: int = 512, **named_tokens: str):
    """A byte-level BPE tokenizer trained on `lines`, with `special_tokens` kept whole; `named_tokens` (bos_token,
    eos_token, pad_token …) name some of them for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **named_tokens)


def build_tiny_tokenizer(seed: int = 0, vocab_size: int = 512):
    """A byte-level BPE tokenizer with Llama 3's special tokens and our llama3 chat template."""
    tokenizer = train_tiny_tokenizer(
        _tokenizer_corpus(seed),
        list(SPECIAL_TOKENS.values()),
        vocab_size,
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
    )
    tokenizer.chat_template = TEMPLATES["llama3"].jinja()
    return tokenizer


def build_tiny_model(
    folder: str | Path,
    seed: int = 0,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Build and save (tokenizer + randomly initialised LlamaForCausalLM) into `folder`; returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(seed, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # Wider than Llama's 0.02: LoRA leaves the head and the final norm frozen, and with a narrow
        # random head the logits could barely move from uniform, so the loss would hardly fall.
        initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def build_tiny_reward_model(folder: str | Path, seed: int = 0) -> Path:
    """A reward model of the tiny model's shape, as the rm stage saves one: tokenizer + LlamaForSequenceClassification.

    Its score head is random (seeded), so it ranks replies arbitrarily but always alike: enough for a
    rollout stage to have rewards that differ between replies, without training an rm first.
    """
    import torch
    from transformers import AutoConfig, LlamaForSequenceClassification

    folder = Path(folder)
    build_tiny_model(folder, seed)  # the tokenizer and the config to start from
    config = AutoConfig.from_pretrained(folder, num_labels=1)
    torch.manual_seed(seed + 3)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    return folder


def tiny_texts(n: int, seed: int = 0) -> list[str]:
    """`n` plain documents of 1 to 8 task records each, written out as text: learnable, of varied lengths."""
    rng = random.Random(seed + 2)  # its own stream: the document lengths drawn do not shift the tasks
    records = iter(tiny_records(8 * n, seed))
    documents = []
    for _ in range(n):
        lines = []
        for record in (next(records) for _ in range(rng.randint(1, 8))):
            prompt = " ".join(part for part in (record["instruction"], record["input"]) if part)
            lines.append(f"{prompt}\n{record['output']}")
        documents.append("\n\n".join(lines))
    return documents


def write_tiny_texts(path: str | Path, n: int = 256, seed: int = 0) -> Path:
    """Write `n` generated documents as JSON lines {"text": ...} to `path` (data format "text")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": text}) for text in tiny_texts(n, seed)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
