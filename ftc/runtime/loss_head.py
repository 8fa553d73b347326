"""The model's own loss in trl's SFT trainer, where the plan chose it (plan.loss_head = "model").

trl's SFTTrainer computes every step's loss through its chunked LM head, and with it each token's
entropy and whether the top token was the label, over the whole vocabulary, at every micro-step. On the
CPU the model's own loss over the full logits is 1.5-2.2x faster (benchmarks/loss_head.py). The loss is
the same: transformers' causal-LM loss, the reply tokens' sum over those of the whole accumulated batch.
The two metrics keep their names in metrics.json; they are computed from the logits the loss already
made, a chunk of positions at a time, in the micro-steps of each optimizer step that is logged and in
evaluation, so a logged value averages the logged step's micro-batches rather than the whole interval.
"""

from __future__ import annotations

from typing import Any

# The positions of a row whose entropy is computed at once: three fp32 copies of their logits (the chunk,
# its probabilities, their entropy terms) are what the metrics add to the forward, as the plan counts them.
from ftc.compiler.memory.logits import METRIC_CHUNK_TOKENS
from ftc.runtime.data.token_rows import IGNORE_INDEX


def with_model_loss(trainer_class: type) -> type:
    """`trainer_class` (trl's SFTTrainer) computing its loss through the model instead of trl's fused head."""
    import torch
    from transformers import Trainer

    class ModelLoss(trainer_class):
        _tokens_seen = 0  # this process's non-padding training tokens, for trl's num_tokens metric

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            inputs["use_cache"] = False
            # Trainer's own: the labels go to the model, which returns the loss (num_items_in_batch included).
            loss, outputs = Trainer.compute_loss(
                self, model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
            logged = mode == "eval" or logs_next_step(self.state, self.args)
            if mode == "train":
                self._tokens_seen += tokens_in(inputs)
                if logged:  # only in a logged step's micro-steps: a gather is a collective, every rank makes it then
                    seen = torch.tensor(self._tokens_seen, device=loss.device)
                    self._total_train_tokens = int(self.accelerator.gather_for_metrics(seen).sum())
            if logged:
                sums = torch.stack(token_metric_sums(outputs.logits, inputs["labels"])).to(loss.device)
                entropy, correct, scored = self.accelerator.gather_for_metrics(sums.unsqueeze(0)).sum(0).tolist()
                self._metrics[mode]["entropy"].append(entropy / scored if scored else 0.0)
                self._metrics[mode]["mean_token_accuracy"].append(correct / scored if scored else 0.0)
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, outputs) if return_outputs else loss

    ModelLoss.__name__ = ModelLoss.__qualname__ = f"{trainer_class.__name__}WithModelLoss"
    return ModelLoss


def logs_next_step(state: Any, args: Any) -> bool:
    """Whether the optimizer step now being computed will be logged (transformers' DefaultFlowCallback's rule)."""
    step = state.global_step + 1  # global_step counts the optimizer steps already taken
    if step == 1 and args.logging_first_step:
        return True
    return args.logging_strategy == "steps" and step % state.logging_steps == 0


def tokens_in(inputs: dict[str, Any]) -> int:
    """Non-padding tokens of a batch: its attention mask's, or every position of a packed (mask-free) batch."""
    mask = inputs.get("attention_mask")
    return int(mask.sum()) if mask is not None else inputs["input_ids"].numel()


def token_metric_sums(logits: Any, labels: Any) -> tuple[Any, Any, Any]:
    """Over the positions that predict a label: the sum of the predicted distribution's entropies, how many
    predictions' top token is the label, and how many positions there are (fp32 tensors)."""
    import torch

    entropy = torch.zeros((), dtype=torch.float32, device=logits.device)
    correct = torch.zeros((), dtype=torch.float32, device=logits.device)
    targets = labels[:, 1:]  # position t predicts the token at t + 1
    scored = targets != IGNORE_INDEX
    with torch.no_grad():
        for row in range(logits.shape[0]):
            predictions = logits[row, :-1]  # the last position predicts nothing in the batch
            for start in range(0, targets.shape[1], METRIC_CHUNK_TOKENS):
                span = slice(start, start + METRIC_CHUNK_TOKENS)
                where = scored[row, span]
                if not where.any():
                    continue
                chunk = predictions[span][where].float()
                entropy += torch.special.entr(chunk.softmax(-1)).sum()
                correct += (chunk.argmax(-1) == targets[row, span][where]).sum()
    return entropy, correct, scored.sum().float()
