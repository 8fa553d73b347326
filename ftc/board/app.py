"""The board's routes: one page, its assets, and the JSON endpoints the page (and the tests) call.

With a token, every request shows it: an `Authorization: Bearer` header, or the cookie that `?token=` sets once.
A POST from another site's page is refused by its Origin, so a page elsewhere cannot launch or cancel runs here.
"""

from __future__ import annotations

import secrets
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ftc.board import editor, runs
from ftc.board.paths import OutsideFolder, inside
from ftc.errors import FtcError, RuntimeUserError
from ftc.serve.hosts import asks_for_loopback

COOKIE = "ftc_board_token"
STATIC = Path(str(resources.files("ftc.board") / "static"))


class Check(BaseModel):
    path: str
    text: str
    hardware: str = "auto"
    nodes: int = Field(default=1, ge=1)
    edits: list[str] = []


class Save(BaseModel):
    path: str
    text: str


class Launch(BaseModel):
    path: str
    hardware: str = "auto"
    nodes: int = Field(default=1, ge=1)
    target: str = "local"
    overwrite: bool = False


class RunRef(BaseModel):
    path: str


def _token_given(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return request.cookies.get(COOKIE, "")


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def build_app(folder: Path, token: str | None = None) -> FastAPI:
    root = folder.resolve()
    app = FastAPI(title="ftc board", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def _guard(request: Request, call_next) -> Response:
        if request.method == "POST" and not _same_origin(request):
            return JSONResponse({"error": "a request from another site's page", "hint": None}, status_code=403)
        if token is None:
            if not asks_for_loopback(request.headers.get("host")):  # DNS rebinding (ftc.serve.hosts)
                return JSONResponse(
                    {
                        "error": f"this board answers only to a loopback name, not {request.headers.get('host')!r}",
                        "hint": "open it as http://127.0.0.1:PORT, or give it a token with --auth-env",
                    },
                    status_code=403,
                )
            return await call_next(request)
        offered = request.query_params.get("token")
        if offered is not None and secrets.compare_digest(offered.encode(), token.encode()):
            # Logged in once: the cookie carries the token from here on, and the address loses it.
            response = RedirectResponse(request.url.remove_query_params("token").path, status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        if not secrets.compare_digest(_token_given(request).encode(), token.encode()):
            return JSONResponse(
                {
                    "error": "this board needs its token",
                    "hint": "open it once with ?token=TOKEN, or send a Bearer header",
                },
                status_code=401,
            )
        return await call_next(request)

    @app.exception_handler(OutsideFolder)
    async def _outside(request: Request, error: OutsideFolder) -> JSONResponse:
        return JSONResponse({"error": error.message, "hint": error.hint}, status_code=403)

    @app.exception_handler(FtcError)
    async def _user_error(request: Request, error: FtcError) -> JSONResponse:
        return JSONResponse({"error": error.message, "hint": error.hint}, status_code=400)

    @app.exception_handler(RuntimeUserError)
    async def _runtime_error(request: Request, error: RuntimeUserError) -> JSONResponse:
        return JSONResponse({"error": error.message, "hint": error.hint}, status_code=400)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def list_runs() -> dict[str, Any]:
        return {"folder": str(root), "runs": runs.list_runs(root)}

    def run_folder(name: str) -> Path:
        path = inside(root, name)
        if not (path / "plan.json").is_file():
            raise FtcError(f"{name} is not a run folder", "a run folder holds the plan.json that ftc launch wrote")
        return path

    @app.get("/api/run")
    def run(path: str) -> dict[str, Any]:
        return runs.run_details(root, run_folder(path))

    @app.post("/api/run/cancel")
    def cancel(ref: RunRef) -> dict[str, Any]:
        return {"said": runs.cancel_run(run_folder(ref.path))}

    @app.get("/api/schema")
    def schema() -> dict[str, Any]:
        from ftc.spec.schema import json_schema

        return json_schema()

    @app.get("/api/hardware")
    def hardware() -> dict[str, Any]:
        from ftc.compiler.hardware import HARDWARE
        from ftc.targets import TARGETS

        return {"hardware": ["auto", *HARDWARE], "targets": list(TARGETS)}

    @app.get("/api/specs")
    def specs() -> dict[str, Any]:
        return {"specs": editor.list_specs(root)}

    @app.get("/api/spec")
    def spec(path: str) -> dict[str, Any]:
        return {"path": path, "text": editor.read_spec(root, path)}

    @app.post("/api/check")
    def check(body: Check) -> dict[str, Any]:
        return editor.check(root, body.path, body.text, body.hardware, body.nodes, body.edits)

    @app.post("/api/save")
    def save(body: Save) -> dict[str, Any]:
        return {"saved": editor.save(root, body.path, body.text)}

    @app.post("/api/launch")
    def launch(body: Launch) -> dict[str, Any]:
        return editor.launch(root, body.path, body.hardware, body.nodes, body.target, body.overwrite)

    return app
