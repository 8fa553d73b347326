"""What a finished stage leaves in the run folder: the trained weights, metrics.json and its curves (PNG)."""

from __future__ import annotations

from typing import Any

from ftc.runs.folder import RunFolder
from ftc.runs.metrics import write_metrics
from ftc.runs.report import plot_title, summary_lines, write_plots
from ftc.runtime.model.lora_inits import resave_for_original_base


def save_trained(trainer: Any, folder: RunFolder) -> None:
    """The adapter (LoRA) or the whole model, with the tokenizer that carries the chat template used."""
    drop_reference_adapters(trainer.model)
    trainer.save_model(str(folder.trained))  # every rank: FSDP and ZeRO-3 gather the shards here
    resave_for_original_base(trainer, folder.trained, folder.path)
    if trainer.is_world_process_zero():  # one writer for the files beside the weights
        trainer.processing_class.save_pretrained(str(folder.trained))


def drop_reference_adapters(model: Any) -> None:
    """Only the trained adapter is the result: trl's DPO/KTO add a frozen copy of it ("ref") as their reference."""
    for name in [name for name in getattr(model, "peft_config", {}) if name != "default"]:
        model.delete_adapter(name)


def finish(folder: RunFolder, metrics: dict[str, Any]) -> None:
    from ftc.runtime.distributed.peak_memory import peak_memory
    from ftc.runtime.distributed.process_group import rank

    metrics["peak_memory"] = peak_memory(folder.plan)  # every rank: the largest over them is kept
    if rank() != 0:  # under torchrun, rank 0 writes the results and prints the summary
        return
    if folder.spec.eval.tasks:
        metrics["benchmarks"] = score_after_training(folder)
    write_metrics(folder.metrics, metrics)
    plots = write_plots(metrics, folder.path, plot_title(metrics, folder.path.name))
    for line in summary_lines(metrics, folder.trained, plots):
        print(line)


def score_after_training(folder: RunFolder) -> dict[str, Any]:
    """[eval]: the saved result scored on each benchmark; the trainer's copy is left as it is (under
    DeepSpeed or FSDP it is sharded), so the folder's weights are what is scored, as `ftc eval` would."""
    from ftc.runtime.benchmark.run import benchmarks_after_training

    section = folder.spec.eval
    print(f"scoring {folder.trained.name}/ on {', '.join(section.tasks)} ({section.shots}-shot)", flush=True)
    return benchmarks_after_training(folder.path, section.tasks, section.data_dir, section.shots, section.chat_template)
