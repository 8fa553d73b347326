"""Generation on held-out prompts, scored against their references with BLEU-4 and ROUGE-1/2/L, as
LLaMA-Factory's do_predict reports them; every reply is kept in generated_predictions.jsonl.

BLEU is sacrebleu's corpus BLEU; ROUGE is Google's rouge-score F-measure averaged over the records. Both read
text through sacrebleu's "zh" tokenizer, which splits Chinese characters apart and tokenises the rest as
sacrebleu's standard 13a does, so Chinese replies are scored rather than dropped (rouge-score's own
tokenizer keeps only ASCII letters and digits). Scores are on a 0–100 scale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftc.errors import RuntimeUserError

PREDICTIONS_FILE = "generated_predictions.jsonl"
_ROUGE = ("rouge1", "rouge2", "rougeL")


def prompts_and_references(path: str | Path, data_format: str) -> list[tuple[list[dict[str, Any]], str]]:
    """(the conversation before the last reply, that reply) of each record of a file in an ftc data format."""
    from ftc.runtime.data.loading import dataset_conversations
    from ftc.spec.models import DatasetSection

    pairs = []
    for conversation in dataset_conversations(DatasetSection(path=str(path), format=data_format)):
        *prompt, last = conversation.messages
        if last["role"] != "assistant" or not prompt:
            raise RuntimeUserError(
                f"{conversation.where}: the record does not end with an assistant reply to a prompt",
                "each record needs a prompt and the reference reply to score the generated one against",
            )
        pairs.append((prompt, str(last["content"])))
    return pairs


def text_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """bleu-4, rouge-1, rouge-2, rouge-l of predictions against references (one each), 0–100."""
    import sacrebleu
    from rouge_score import rouge_scorer
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    bleu = sacrebleu.corpus_bleu(predictions, [references], tokenize="zh")
    scorer = rouge_scorer.RougeScorer(list(_ROUGE), tokenizer=_SplitTokens(TokenizerZh()))
    rouge = {name: 0.0 for name in _ROUGE}
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            rouge[name] += score.fmeasure
    count = len(predictions)
    return {
        "bleu-4": bleu.score,
        "rouge-1": 100 * rouge["rouge1"] / count,
        "rouge-2": 100 * rouge["rouge2"] / count,
        "rouge-l": 100 * rouge["rougeL"] / count,
    }


class _SplitTokens:
    """rouge-score's tokenizer interface over a sacrebleu tokenizer (which returns one spaced string)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer(text.lower()).split()


def predict(
    model: Any,
    tokenizer: Any,
    path: str | Path,
    data_format: str,
    out_dir: Path,
    max_new_tokens: int,
    chat_template: bool,
    limit: int | None = None,
) -> dict[str, Any]:
    """Generate greedily for every prompt of the file, write the replies, and score them."""
    pairs = prompts_and_references(path, data_format)[:limit]
    chat_template = chat_template and bool(tokenizer.chat_template)
    rows = [
        {"prompt": prompt, "predict": _reply(model, tokenizer, prompt, chat_template, max_new_tokens), "label": label}
        for prompt, label in pairs
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = out_dir / PREDICTIONS_FILE
    written.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    scores = text_scores([row["predict"] for row in rows], [row["label"] for row in rows])
    return {"file": str(path), "records": len(rows), "chat_template": chat_template, "predictions": str(written)} | {
        "scores": scores
    }


def _reply(model: Any, tokenizer: Any, prompt: list[dict[str, Any]], chat_template: bool, max_new_tokens: int) -> str:
    import torch

    if chat_template:
        encoded = tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:  # a base model: the turns' text, one per line
        encoded = tokenizer("\n".join(str(message["content"]) for message in prompt), return_tensors="pt")
    encoded = encoded.to(model.device)
    with torch.no_grad():
        generated = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return tokenizer.decode(generated[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()
