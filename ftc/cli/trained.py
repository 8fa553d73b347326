"""`ftc export`, `ftc chat` and `ftc serve`: what to do with a trained run folder. The runtime does the work."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from ftc.errors import FtcError


def export_run(run_dir: Path, output: Path | None, checkpoint: str | None, dtype: str, overwrite: bool) -> None:
    from ftc.quickstart.workspace import require_training_extra

    require_training_extra()
    from ftc.errors import RuntimeUserError
    from ftc.runtime.export import export

    try:
        target = export(run_dir, output, checkpoint, dtype, overwrite)
    except RuntimeUserError as error:
        raise FtcError(error.message, error.hint) from None
    from ftc.runtime.model.processor import PROCESSOR_CONFIG

    with_processor = (target / PROCESSOR_CONFIG).is_file()
    with_what = (
        "processor (tokenizer, chat template, image processor)" if with_processor else "tokenizer and chat template"
    )
    print(f"exported {target}: safetensors weights with the run's {with_what}")


def chat_with_run(
    run_dir: Path, checkpoint: str | None, max_new_tokens: int, temperature: float, image: Path | None = None
) -> None:
    from ftc.quickstart.workspace import require_training_extra

    require_training_extra()
    from ftc.errors import RuntimeUserError
    from ftc.runtime.chat import chat

    try:
        chat(str(run_dir), checkpoint, max_new_tokens, temperature, image=image)
    except RuntimeUserError as error:
        raise FtcError(error.message, error.hint) from None


SERVE_LIBRARIES = ("fastapi", "uvicorn")


def serve_run(args: argparse.Namespace) -> None:
    from ftc.quickstart.workspace import require_training_extra

    require_training_extra()
    missing = [name for name in SERVE_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise FtcError(f"serving needs {', '.join(missing)}, which are not installed", "pip install 'ftc[serve]'")
    from ftc.errors import RuntimeUserError
    from ftc.serve.server import serve

    try:
        serve(
            args.target,
            host=args.host,
            port=args.port,
            backend=args.backend,
            api_key_env=args.api_key_env,
            concurrency=args.concurrency,
            checkpoint=args.checkpoint,
            name=args.model_name,
        )
    except RuntimeUserError as error:
        raise FtcError(error.message, error.hint) from None


def eval_run(args: argparse.Namespace) -> None:
    from ftc.benchmarks import BENCHMARKS

    if args.task is None and args.predict is None:
        raise FtcError("nothing to evaluate", f"name a benchmark (--task {'|'.join(BENCHMARKS)}) or --predict FILE")
    if args.task is not None and args.task not in BENCHMARKS:
        raise FtcError(f"no benchmark {args.task!r}", f"use one of: {', '.join(BENCHMARKS)}")
    if args.task is not None and args.data is None:
        raise FtcError(
            f"{args.task} is read from local files: --data is missing",
            f"--data DIR, the folder of {BENCHMARKS[args.task].summary}",
        )
    from ftc.quickstart.workspace import require_training_extra

    require_training_extra()
    import importlib.util

    from ftc.errors import RuntimeUserError

    missing = [name for name in ("lm_eval", "sacrebleu", "rouge_score") if importlib.util.find_spec(name) is None]
    if missing:
        raise FtcError(f"ftc eval needs {', '.join(missing)}, which are not installed", "pip install 'ftc[eval]'")
    from ftc.runtime.benchmark.run import evaluate

    try:
        results = evaluate(
            args.target,
            [args.task] if args.task else [],
            args.data,
            args.shots,
            args.chat_template,
            checkpoint=args.checkpoint,
            predict_file=args.predict,
            predict_format=args.predict_format,
            out_dir=args.output.parent if args.output else None,
            max_new_tokens=args.max_new_tokens,
            limit=args.limit,
        )
    except RuntimeUserError as error:
        raise FtcError(error.message, error.hint) from None
    text = json.dumps(results, indent=2, ensure_ascii=False)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.output_format == "json":
        print(text)
    else:
        _print_results(results)
    if args.output is not None:
        print(f"results: {args.output}")


def _print_results(results: dict) -> None:
    from rich.table import Table

    from ftc.cli.output import console

    for task, result in results["benchmarks"].items():
        prompt = "chat template" if result["chat_template"] else "plain prompt"
        table = Table(title=f"{task}: {result['split']} split, {result['shots']}-shot, {prompt} ({result['engine']})")
        for column in ("subject", "accuracy", "correct", "questions"):
            table.add_column(column, justify="left" if column == "subject" else "right")
        for subject, entry in result["subjects"].items():
            table.add_row(subject, f"{entry['accuracy']:.4f}", str(entry["correct"]), str(entry["questions"]))
        table.add_section()
        table.add_row("overall", f"{result['accuracy']:.4f}", str(result["correct"]), str(result["questions"]))
        console().print(table)
    if "predict" in results:
        predicted = results["predict"]
        scores = ", ".join(f"{name} {value:.2f}" for name, value in predicted["scores"].items())
        console().print(f"predict: {predicted['records']} records of {predicted['file']}: {scores}")
        console().print(f"replies: {predicted['predictions']}")
