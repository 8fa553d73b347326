"""What a finished stage leaves in the run folder: the trained weights, metrics.json and loss.png."""

from __future__ import annotations

from typing import Any

from ftc.runtime.metrics import write_metrics
from ftc.runtime.report import draw_loss_curve, summary_lines
from ftc.runtime.run_folder import RunFolder


def save_trained(trainer: Any, folder: RunFolder) -> None:
    """The adapter (LoRA) or the whole model, with the tokenizer that carries the chat template used."""
    trainer.save_model(str(folder.trained))
    trainer.processing_class.save_pretrained(str(folder.trained))


def finish(folder: RunFolder, metrics: dict[str, Any]) -> None:
    write_metrics(folder.metrics, metrics)
    if metrics["log"]:
        title = f"{metrics['stage']} · {metrics['method']} · {folder.path.name}"
        draw_loss_curve(metrics["log"], folder.loss_plot, title)
    for line in summary_lines(metrics, folder.trained, folder.loss_plot):
        print(line)
