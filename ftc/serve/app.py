"""The FastAPI app: /v1/models and /v1/chat/completions over one Backend.

Generation runs in worker threads, at most `concurrency` at once (an asyncio semaphore; the rest wait their
turn), so the event loop keeps answering. Every refusal is OpenAI's error body with a 4xx status; an
unexpected failure is a 500 with the same body and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ftc.serve.backends import Backend, Completion, Prompt, RequestError, Sampling
from ftc.serve.hosts import asks_for_loopback
from ftc.serve.protocol import ChatCompletionRequest, error_body

INVALID = "invalid_request_error"
_DONE = object()


def _error(status: int, message: str, kind: str = INVALID, param: str | None = None, code: str | None = None):
    return JSONResponse(error_body(message, kind, param, code), status_code=status)


def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {"msg": "invalid request", "loc": ()}
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(where) or None
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    return _error(400, message, param=param, code=first.get("type"))


def build_app(backend: Backend, api_key: str | None = None, concurrency: int = 1) -> FastAPI:
    app = FastAPI(title="ftc serve", docs_url=None, redoc_url=None)
    gate = asyncio.Semaphore(concurrency)
    created = int(time.time())
    app.state.backend = backend

    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), code="not_found" if error.status_code == 404 else None)

    @app.exception_handler(Exception)
    async def _server_error(_: Request, error: Exception) -> JSONResponse:
        return _error(500, f"the server failed: {type(error).__name__}: {error}", kind="server_error")

    @app.middleware("http")
    async def _authorise(request: Request, call_next):
        if api_key is None and not asks_for_loopback(request.headers.get("host")):  # DNS rebinding (ftc.serve.hosts)
            return _error(
                403,
                f"without an API key this server answers only to a loopback name, not {request.headers.get('host')!r}",
                code="host_not_allowed",
            )
        if api_key is not None:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
                return _error(401, "invalid or missing API key: send Authorization: Bearer KEY", code="invalid_api_key")
        return await call_next(request)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(backend.name, created)]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name != backend.name:
            return _unknown_model(name, backend.name)
        return _model_card(name, created)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        if body.model != backend.name:
            return _unknown_model(body.model, backend.name)
        sampling = Sampling(body.temperature, body.top_p, body.token_limit, body.stop_strings)
        messages = [message.for_template() for message in body.messages]
        try:
            prompt = await asyncio.to_thread(backend.prompt, messages, body.offered_tools)
            backend.token_budget(prompt, sampling.max_tokens)  # refused before the stream's 200 is sent
        except RequestError as error:
            return _error(400, error.message, param=error.param, code=error.code)
        answer_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            events = _stream(backend, gate, prompt, sampling, body, answer_id)
            return StreamingResponse(events, media_type="text/event-stream")
        async with gate:
            completions = [await asyncio.to_thread(backend.complete, prompt, sampling) for _ in range(body.n)]
        return _response(backend, prompt, completions, answer_id)

    return app


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "ftc"}


def _unknown_model(asked: str, served: str) -> JSONResponse:
    return _error(
        404,
        f"the model {asked!r} does not exist here; this server serves {served!r}",
        param="model",
        code="model_not_found",
    )


def _message(backend: Backend, prompt: Prompt, completion: Completion) -> tuple[dict[str, Any], str]:
    if not prompt.tools:
        return {"role": "assistant", "content": completion.text}, completion.finish_reason
    content, calls = backend.templating.tool_calls(prompt, completion.text)
    if not calls:
        return {"role": "assistant", "content": content}, completion.finish_reason
    return {"role": "assistant", "content": content, "tool_calls": calls}, "tool_calls"


def _usage(prompt: Prompt, completions: list[Completion]) -> dict[str, int]:
    written = sum(completion.tokens for completion in completions)
    return {
        "prompt_tokens": prompt.token_count,
        "completion_tokens": written,
        "total_tokens": prompt.token_count + written,
    }


def _response(backend: Backend, prompt: Prompt, completions: list[Completion], answer_id: str) -> dict[str, Any]:
    choices = []
    for index, completion in enumerate(completions):
        message, reason = _message(backend, prompt, completion)
        choices.append({"index": index, "message": message, "finish_reason": reason, "logprobs": None})
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": backend.name,
        "choices": choices,
        "usage": _usage(prompt, completions),
    }


def _chunk(answer_id: str, model: str, choices: list[dict[str, Any]], usage: dict | None = None) -> str:
    chunk = {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def _stream(
    backend: Backend,
    gate: asyncio.Semaphore,
    prompt: Prompt,
    sampling: Sampling,
    body: ChatCompletionRequest,
    answer_id: str,
) -> AsyncIterator[str]:
    """SSE: for each choice a role chunk, its text as written, a last chunk with the finish reason; then usage
    (if asked) and [DONE]. With tools offered, text passes while it cannot yet be a tool call; the calls come
    after it, each whole in one chunk, once the reply is done."""
    completions: list[Completion] = []
    async with gate:
        for index in range(body.n):
            yield _chunk(answer_id, backend.name, [_delta(index, {"role": "assistant", "content": ""})])
            reader = backend.templating.reader(prompt) if prompt.tools else None
            completion, reason = None, None
            async for piece in _in_thread(backend.stream(prompt, sampling)):
                if isinstance(piece, Completion):
                    completion, reason = piece, piece.finish_reason
                    continue
                shown = reader.feed(piece) if reader is not None else piece
                if shown:
                    yield _chunk(answer_id, backend.name, [_delta(index, {"content": shown})])
            if reader is not None:
                rest, calls = reader.finish()
                if rest:
                    yield _chunk(answer_id, backend.name, [_delta(index, {"content": rest})])
                for call in calls:
                    yield _chunk(answer_id, backend.name, [_delta(index, {"tool_calls": [call]})])
                reason = "tool_calls" if calls else reason
            completions.append(completion)
            yield _chunk(answer_id, backend.name, [_delta(index, {}, reason)])
    if body.stream_options is not None and body.stream_options.include_usage:
        yield _chunk(answer_id, backend.name, [], _usage(prompt, completions))
    yield "data: [DONE]\n\n"


def _delta(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


async def _in_thread(pieces: Iterator[Any]) -> AsyncIterator[Any]:
    """Each next() of a blocking iterator in a worker thread, so the event loop serves others meanwhile."""
    while True:
        piece = await asyncio.to_thread(next, pieces, _DONE)
        if piece is _DONE:
            return
        yield piece
