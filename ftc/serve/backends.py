"""The generation engines behind `ftc serve`, one interface: render a prompt with the model's chat template,
complete it, stream it, read tool calls from a reply.

transformers runs everywhere (the CPU included): `generate`, with a TextIteratorStreamer in a thread for
streaming. vLLM runs where CUDA and the vllm package are; ENGINES says which packages and devices each needs,
and `choose_engine` picks one or says why it cannot.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ftc.errors import RuntimeUserError

STOP, LENGTH = "stop", "length"  # finish reasons
CONTENT = "content"  # the response_template's field for the reply's text, tool calls aside
DEFAULT_MAX_TOKENS = 512  # a request that names no max_tokens gets this many, or what the context has left


class RequestError(Exception):
    """A request the model cannot answer as asked: a 400 naming the parameter, never a server error."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass(frozen=True)
class Sampling:
    temperature: float  # 0: greedy
    top_p: float
    max_tokens: int | None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    text: str
    token_count: int
    tools: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # STOP or LENGTH
    tokens: int


class StopCutter:
    """Cuts streamed text at the first stop string, holding back a tail that may yet become one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops, self.held, self.stopped = stops, "", False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        text = self.held + piece
        found = [index for index in (text.find(stop) for stop in self.stops) if index >= 0]
        if found:
            self.stopped, self.held = True, ""
            return text[: min(found)]
        keep = max((n for stop in self.stops for n in range(1, len(stop)) if text.endswith(stop[:n])), default=0)
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        rest, self.held = self.held, ""
        return rest


class Templating:
    """The model's chat template through its tokenizer: prompts, and tool calls read back from replies."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Prompt:
        text = self._render(messages, tools)
        if tools:
            if text == self._render(messages, None):
                raise RequestError(
                    "the model's chat template has no tool format: it renders the same prompt with tools and without",
                    "tools",
                    "tools_unsupported",
                )
            if getattr(self.tokenizer, "response_template", None) is None:
                raise RequestError(
                    "the model's chat template shows tools, but its tokenizer has no response_template "
                    "to read a tool call from a reply",
                    "tools",
                    "tools_unsupported",
                )
        count = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return Prompt(text, count, tools)

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        except (TemplateError, TypeError, ValueError, KeyError) as error:
            raise RequestError(f"the chat template refused the messages: {error}", "messages") from None

    def reader(self, prompt: Prompt) -> ToolCallReader:
        """A reader that streams a reply's content as it is written, with tools offered."""
        return ToolCallReader(self, prompt)

    def tool_calls(self, prompt: Prompt, reply: str) -> tuple[str | None, list[dict[str, Any]]]:
        """(content, tool calls in OpenAI's shape) read from a reply by the tokenizer's response_template."""
        try:
            parsed = self.tokenizer.parse_response(reply, prefix=prompt.text, tools=prompt.tools)
        except Exception:  # noqa: BLE001 - a model's text is whatever it wrote: unreadable calls are plain content
            return reply, []
        calls = []
        for call in parsed.get("tool_calls") or []:
            function = call.get("function", call) if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            name, arguments = function.get("name"), function.get("arguments", {})
            if not isinstance(name, str):
                continue
            text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
            calls.append(
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": name, "arguments": text},
                }
            )
        return (parsed.get(CONTENT) or None) if calls else reply, calls


class ToolCallReader:
    """A streamed reply read as it is written, with tools offered: its content passes on while it cannot yet be
    the start of a tool call; the calls are read from the whole reply at the end, as an answer sent whole reads
    them, so both agree.

    transformers' streaming ResponseParser decides what is content: it holds back text that may still become a
    region's opening (a marker cut at a piece's edge included). Once anything other than the content region
    shows (a call opens, content closes) or the parser fails, nothing more passes until the end. What passed is
    always the reply's first characters, so the rest is known exactly at the end."""

    def __init__(self, templating: Templating, prompt: Prompt) -> None:
        from transformers.utils.chat_parsing import ResponseParser

        self.templating, self.prompt = templating, prompt
        self.reply, self.shown, self.holding = "", 0, False
        try:
            self.parser = ResponseParser(templating.tokenizer.response_template, prefix=prompt.text, tools=prompt.tools)
        except Exception:  # noqa: BLE001 - a template the parser refuses: the reply goes whole, as `complete` sends it
            self.holding = True

    def feed(self, piece: str) -> str:
        """The content that may be sent now (possibly none)."""
        self.reply += piece
        if self.holding:
            return ""
        try:
            events = self.parser.feed(piece)
        except Exception:  # noqa: BLE001 - a region the parser cannot read: the end decides what it was
            events = [{"type": "unreadable"}]
        passed = []
        for event in events:
            if event.get("field") != CONTENT or event["type"] == "region_close":
                self.holding = True
                break
            if event["type"] == "region_chunk":
                passed.append(event["text"])
        text = "".join(passed)
        self.shown += len(text)
        return text

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """(the content still to send, the tool calls in OpenAI's shape, each with its index)."""
        content, calls = self.templating.tool_calls(self.prompt, self.reply)
        if not calls:
            return self.reply[self.shown :], []
        sent = self.reply[: self.shown]
        rest = content[len(sent) :] if content and content.startswith(sent) else ""
        return rest, [{"index": index, **call} for index, call in enumerate(calls)]


class Backend(ABC):
    """One loaded model answering chat prompts. Its methods block; the app runs them off the event loop."""

    name: str  # the model id clients ask for
    context_length: int | None
    templating: Templating

    def prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Prompt:
        return self.templating.prompt(messages, tools)

    def token_budget(self, prompt: Prompt, asked: int | None) -> int:
        left = None if self.context_length is None else self.context_length - prompt.token_count
        if left is not None and (left < 1 or (asked is not None and asked > left)):
            raise RequestError(
                f"the prompt has {prompt.token_count} tokens and the model's context is {self.context_length}: "
                f"{max(left, 0)} left for the reply, {asked or 1} asked",
                "max_tokens" if asked else "messages",
                "context_length_exceeded",
            )
        budget = asked or DEFAULT_MAX_TOKENS
        return budget if left is None else min(budget, left)

    @abstractmethod
    def complete(self, prompt: Prompt, sampling: Sampling) -> Completion: ...

    @abstractmethod
    def stream(self, prompt: Prompt, sampling: Sampling) -> Iterator[str | Completion]:
        """Text pieces as they are written, then the whole Completion."""


class TransformersBackend(Backend):
    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.templating = Templating(tokenizer)
        self.context_length = getattr(model.config, "max_position_embeddings", None)
        ends = model.generation_config.eos_token_id
        ends = [ends] if isinstance(ends, int) else list(ends or [])
        self.ends = sorted({*ends, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})

    def _arguments(self, prompt: Prompt, sampling: Sampling) -> dict[str, Any]:
        import torch

        ids = torch.tensor([self.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]])
        arguments: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": self.token_budget(prompt, sampling.max_tokens),
            "eos_token_id": self.ends,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.ends[0],
        }
        if sampling.temperature > 0:
            arguments |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        else:
            arguments |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if sampling.stop:
            from transformers import StoppingCriteriaList

            from ftc.serve.stopping import StopOnShownText

            stop = StopOnShownText(self.tokenizer, sampling.stop, ids.shape[1])
            arguments["stopping_criteria"] = StoppingCriteriaList([stop])
        return arguments

    def _generate(self, arguments: dict[str, Any]) -> list[int]:
        import torch

        with torch.no_grad():
            output = self.model.generate(**arguments)
        return output[0, arguments["input_ids"].shape[1] :].tolist()

    def _finished(self, new: list[int], text: str, cutter: StopCutter, budget: int) -> Completion:
        ended = bool(new) and new[-1] in self.ends
        reason = STOP if cutter.stopped or ended or len(new) < budget else LENGTH
        return Completion(text, reason, len(new))

    def complete(self, prompt: Prompt, sampling: Sampling) -> Completion:
        arguments = self._arguments(prompt, sampling)
        new = self._generate(arguments)
        # with tools offered, the markers of a tool call may be special tokens the parser needs to see
        shown = [token for token in new if token not in self.ends]
        text = self.tokenizer.decode(shown, skip_special_tokens=not prompt.tools)
        cutter = StopCutter(sampling.stop)
        text = cutter.feed(text) + cutter.flush()
        return self._finished(new, text, cutter, arguments["max_new_tokens"])

    def stream(self, prompt: Prompt, sampling: Sampling) -> Iterator[str | Completion]:
        arguments = self._arguments(prompt, sampling)
        streamer = _reply_streamer(self.tokenizer, self.ends, skip_special_tokens=not prompt.tools)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["new"] = self._generate({**arguments, "streamer": streamer})
            except BaseException as error:  # re-raised in the caller's thread once the streamer ends
                result["error"] = error
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        cutter, written = StopCutter(sampling.stop), []
        for piece in streamer:
            shown = cutter.feed(piece)
            if shown:
                written.append(shown)
                yield shown
        thread.join()
        if "error" in result:
            raise result["error"]
        rest = cutter.flush()
        if rest:
            written.append(rest)
            yield rest
        yield self._finished(result["new"], "".join(written), cutter, arguments["max_new_tokens"])


def _reply_streamer(tokenizer: Any, ends: list[int], skip_special_tokens: bool) -> Any:
    """transformers' TextIteratorStreamer without the end-of-turn tokens: the streamed text is the text `complete`
    decodes, special tokens kept where tool calls may be marked by them."""
    from transformers import TextIteratorStreamer

    class ReplyStreamer(TextIteratorStreamer):
        def put(self, value: Any) -> None:
            if self.next_tokens_are_prompt:
                super().put(value)
                return
            kept = [token for token in value.reshape(-1).tolist() if token not in ends]
            if kept:
                super().put(value.new_tensor(kept))

    return ReplyStreamer(tokenizer, skip_prompt=True, skip_special_tokens=skip_special_tokens)


class VllmBackend(Backend):
    """vLLM's engine on CUDA, a LoRA adapter applied per request. Reached only through choose_engine's checks."""

    def __init__(self, base: str, adapter: str | None, name: str, max_model_len: int | None) -> None:
        from vllm import LLM  # type: ignore[import-not-found]

        self.name = name
        self.engine = LLM(model=base, enable_lora=adapter is not None, max_model_len=max_model_len)
        self.adapter = adapter
        self.templating = Templating(self.engine.get_tokenizer())
        self.context_length = max_model_len

    def complete(self, prompt: Prompt, sampling: Sampling) -> Completion:
        from vllm import SamplingParams  # type: ignore[import-not-found]
        from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

        params = SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=self.token_budget(prompt, sampling.max_tokens),
            stop=list(sampling.stop) or None,
        )
        lora = LoRARequest("adapter", 1, self.adapter) if self.adapter else None
        output = self.engine.generate([prompt.text], params, lora_request=lora)[0].outputs[0]
        return Completion(output.text, LENGTH if output.finish_reason == LENGTH else STOP, len(output.token_ids))

    def stream(self, prompt: Prompt, sampling: Sampling) -> Iterator[str | Completion]:
        completion = self.complete(prompt, sampling)  # the offline engine answers whole; one piece, then the end
        yield completion.text
        yield completion


@dataclass(frozen=True)
class Engine:
    name: str
    package: str  # what must be importable
    needs_cuda: bool
    summary: str


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine("transformers", "transformers", False, "transformers' generate: any device, the CPU included"),
        Engine("vllm", "vllm", True, "vLLM's engine: paged KV cache and batching, CUDA only"),
    )
}
AUTO = "auto"


def choose_engine(
    requested: str,
    cuda: bool,
    installed: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
) -> Engine:
    """The engine asked for, or (auto) the fastest one this machine can run; a refusal says what is missing."""
    if requested == AUTO:
        fits = [engine for engine in ENGINES.values() if installed(engine.package) and (cuda or not engine.needs_cuda)]
        return fits[-1] if fits else ENGINES["transformers"]
    engine = ENGINES[requested]
    missing = [
        what
        for what, ok in ((engine.package, installed(engine.package)), ("CUDA", cuda or not engine.needs_cuda))
        if not ok
    ]
    if missing:
        needs = " and ".join(["CUDA", engine.package] if engine.needs_cuda else [engine.package])
        raise RuntimeUserError(
            f"the {engine.name} backend needs {needs}; this machine lacks {' and '.join(missing)}",
            "serve with --backend transformers (it runs on the CPU too)",
        )
    return engine
