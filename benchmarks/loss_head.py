"""The LM head and loss on the CPU: trl's fused (chunked) head against the model's own loss.

ftc's planner chooses between them (plan.loss_head): on accelerators trl's head, which never holds the
batch × seq × vocab logits; on the CPU the model's own loss while its logits stay under a bound. This
measures why, through the libraries' public paths. For each shape, a one-layer Llama of that hidden size and
vocabulary (random weights, fp32, torch's default threads) takes a forward and backward of one row:

- fused: `model(..., fused_lm_head=True)` after trl's `add_fused_lm_head` with the outputs SFTTrainer asks
  for (log-probabilities, entropy, top-1 hits), the loss as SFTTrainer forms it;
- model: `model(..., labels=...)`, transformers' causal-LM loss over the full logits;
- model + metrics: the same, plus ftc's entropy and token accuracy from those logits
  (`ftc.runtime.loss_head.token_metric_sums`), which the runtime computes only at logged steps.

The decoder layer is the same in all three, so the differences are the head's. Fastest of `--repeats`
after one warm-up. Prints a table and writes JSON (default benchmarks/results/loss_head.json).

    python benchmarks/loss_head.py [--repeats 3] [--shapes 512x32000x256 2048x151936x1024 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_report  # noqa: E402

# tokens × vocabulary × hidden size: the quickstart's tiny model, then real vocabularies (Llama 2, Llama 3, Qwen 2)
SHAPES = ("512x512x64", "512x32000x256", "1024x32000x1024", "1024x128256x1024", "2048x151936x1024")


def one_layer_llama(vocab: int, hidden: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    heads = max(1, hidden // 64)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=1,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).float()


def measure(tokens: int, vocab: int, hidden: int, repeats: int) -> dict[str, Any]:
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from ftc.runtime.loss_head import token_metric_sums

    model = one_layer_llama(vocab, hidden)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as trl's SFTTrainer does
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (1, tokens), generator=generator)
    labels = ids.clone()
    labels[:, : tokens // 4] = -100  # a prompt the loss leaves out

    def fused() -> None:
        outputs = model(input_ids=ids, labels=labels, fused_lm_head=True)
        loss = -outputs.log_probs.sum() / outputs.label_mask.sum()
        loss.backward()

    def own() -> None:
        model(input_ids=ids, labels=labels).loss.backward()

    def own_with_metrics() -> None:
        outputs = model(input_ids=ids, labels=labels)
        token_metric_sums(outputs.logits, labels)
        outputs.loss.backward()

    seconds = {}
    for name, step in (("fused", fused), ("model", own), ("model_with_metrics", own_with_metrics)):
        step()  # warm-up: first-touch allocations
        times = []
        for _ in range(repeats):
            model.zero_grad(set_to_none=True)
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        seconds[name] = min(times)
    return {
        "tokens": tokens,
        "vocab": vocab,
        "hidden": hidden,
        "logits_mib": tokens * vocab * 4 / 2**20,
        "seconds": seconds,
        "fused_over_model": seconds["fused"] / seconds["model"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), help="TOKENSxVOCABxHIDDEN")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loss_head.json")
    args = parser.parse_args()
    import torch

    print(f"{'tokens':>7}{'vocab':>9}{'hidden':>8}{'logits MiB':>12}{'fused s':>10}{'model s':>10}"
          f"{'+metrics s':>12}{'fused/model':>13}")  # fmt: skip
    results = []
    for shape in args.shapes:
        tokens, vocab, hidden = (int(part) for part in shape.split("x"))
        result = measure(tokens, vocab, hidden, args.repeats)
        results.append(result)
        times = result["seconds"]
        print(
            f"{tokens:>7}{vocab:>9}{hidden:>8}{result['logits_mib']:>12,.0f}{times['fused']:>10.3f}"
            f"{times['model']:>10.3f}{times['model_with_metrics']:>12.3f}{result['fused_over_model']:>12.2f}×",
            flush=True,
        )
    write_report(args.out, "loss_head", torch_threads=torch.get_num_threads(), repeats=args.repeats, results=results)


if __name__ == "__main__":
    main()
