"""`ftc export`, `ftc chat` and `ftc serve`: what to do with a trained run folder. The runtime does the work."""

from __future__ import annotations

import argparse
import importlib.util
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
    print(f"exported {target}: safetensors weights with the run's tokenizer and chat template")


def chat_with_run(run_dir: Path, checkpoint: str | None, max_new_tokens: int, temperature: float) -> None:
    from ftc.quickstart.workspace import require_training_extra

    require_training_extra()
    from ftc.errors import RuntimeUserError
    from ftc.runtime.chat import chat

    try:
        chat(str(run_dir), checkpoint, max_new_tokens, temperature)
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
