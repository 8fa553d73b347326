"""Start the board: check the folder, the libraries and the token, then run the app under uvicorn."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ftc.errors import FtcError, RuntimeUserError


def run_board(folder: Path, host: str = "127.0.0.1", port: int = 7860, auth_env: str | None = None) -> None:
    from ftc.cli.doctor import BOARD_STACK

    missing = [name for name in BOARD_STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise FtcError(f"the board needs {', '.join(missing)}, which are not installed", "pip install 'ftc[board]'")
    if not folder.is_dir():
        raise FtcError(f"{folder} is not a folder", "name the folder that holds your specs and runs")
    import uvicorn

    from ftc.board.app import build_app
    from ftc.serve.server import read_api_key

    try:
        token = read_api_key(auth_env, host, sys.stderr, flag="--auth-env", what="the board")
    except RuntimeUserError as error:
        raise FtcError(error.message, error.hint) from None
    shown = f"[{host}]" if ":" in host else host
    login = "?token=…" if token else ""
    print(f"ftc board for {folder.resolve()} on http://{shown}:{port}/{login}", flush=True)
    uvicorn.run(build_app(folder, token), host=host, port=port, log_level="warning")
