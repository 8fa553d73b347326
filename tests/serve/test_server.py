"""ftc serve, started for real (uvicorn on a free loopback port) over a trained tiny LoRA run, asked through
OpenAI's own Python client: plain and streamed answers, the sampling parameters, concurrent requests,
OpenAI-shaped 4xx refusals and the API key."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import uvicorn

from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.serve.app import build_app
from ftc.serve.backends import ENGINES, TransformersBackend
from ftc.serve.server import load_backend
from tests.tiny_runs import SHORT, tiny_spec

KEY = "sk-test-key"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, run_folder):
    from ftc.runtime.__main__ import run

    root = tmp_path_factory.mktemp("serve-lora")
    data = write_tiny_alpaca(root / "data.json", seed=0)
    folder = load_run_folder(
        run_folder(tiny_spec(root / "quickstart", tiny_model_dir, data, preset=SHORT, max_steps=4))
    )
    run(str(folder.path))
    return folder


def call(url: str, body: bytes | None = None, key: str | None = KEY) -> tuple[int, dict]:
    """A raw HTTP call (what a client other than OpenAI's may send): its status and JSON body."""
    headers = {"content-type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Running:
    def __init__(self, app) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def backend(lora_run):
    return load_backend(lora_run.path, ENGINES["transformers"], None, None)


@pytest.fixture(scope="module")
def served(backend):
    with Running(build_app(backend, api_key=KEY, concurrency=2)) as url:
        yield url


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served, api_key=KEY, max_retries=0)


def test_a_lora_run_is_served_on_its_base_with_the_adapter_unmerged(backend, lora_run):
    from peft import PeftModel

    assert isinstance(backend, TransformersBackend) and isinstance(backend.model, PeftModel)
    assert backend.name == "quickstart"
    assert "<|start_header_id|>" in backend.prompt([{"role": "user", "content": "hi"}]).text  # the run's template


def test_models_lists_the_served_run(client):
    assert [model.id for model in client.models.list().data] == ["quickstart"]


def test_a_greedy_answer_through_the_openai_client(client, backend):
    from ftc.runtime.chat import respond

    answer = client.chat.completions.create(
        model="quickstart", messages=[{"role": "user", "content": "Name a colour."}], temperature=0, max_tokens=6
    )
    choice = answer.choices[0]
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    expected = respond(backend.model, backend.tokenizer, [{"role": "user", "content": "Name a colour."}], 6, 0.0)
    assert choice.message.content.strip() == expected
    prompt = backend.prompt([{"role": "user", "content": "Name a colour."}])
    assert answer.usage.prompt_tokens == prompt.token_count
    assert 1 <= answer.usage.completion_tokens <= 6
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_a_streamed_answer_is_the_plain_answer_in_pieces(client):
    asked = {"model": "quickstart", "messages": [{"role": "user", "content": "hello"}], "temperature": 0}
    whole = client.chat.completions.create(**asked, max_tokens=8).choices[0]
    chunks = list(
        client.chat.completions.create(**asked, max_tokens=8, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.message.content
    finals = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finals == [whole.finish_reason]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_n_choices_sampling_and_max_tokens(client):
    answer = client.chat.completions.create(
        model="quickstart",
        messages=[{"role": "user", "content": "hi"}],
        n=3,
        temperature=1.5,
        top_p=0.9,
        max_tokens=2,
    )
    assert [choice.index for choice in answer.choices] == [0, 1, 2]
    assert answer.usage.completion_tokens <= 6
    assert all(choice.finish_reason in ("stop", "length") for choice in answer.choices)


@pytest.fixture(scope="module")
def model_client(tiny_model_dir):
    """The untrained tiny model folder served as MODEL, without a key: it writes many characters where the
    trained run's tiny model ends its reply at once."""
    backend = load_backend(tiny_model_dir, ENGINES["transformers"], None, None)
    with Running(build_app(backend)) as url:
        yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


def test_a_stop_string_ends_generation_early_and_cuts_the_answer(model_client):
    asked = {"model": "model", "messages": [{"role": "user", "content": "hello"}], "temperature": 0}
    whole = model_client.chat.completions.create(**asked, max_tokens=12)
    free = whole.choices[0].message.content
    assert len(free) >= 2 and whole.choices[0].finish_reason == "length", free
    assert whole.usage.completion_tokens == 12
    stop = free[1]
    client = model_client
    answer = client.chat.completions.create(**asked, max_tokens=12, stop=[stop])
    cut = answer.choices[0]
    assert cut.message.content == free[: free.index(stop)] and cut.finish_reason == "stop"
    # generation ended on the token that completed the stop string, not at max_tokens
    assert 1 <= answer.usage.completion_tokens < 12
    streamed = list(
        client.chat.completions.create(
            **asked, max_tokens=12, stop=stop, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == cut.message.content
    assert streamed[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_the_stop_criterion_reads_the_reply_as_shown_not_special_tokens_or_the_prompt(tiny_model_dir):
    import torch
    from transformers import AutoTokenizer

    from ftc.serve.stopping import StopOnShownText

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tokenizer("hello", add_special_tokens=False)["input_ids"]
    criterion = StopOnShownText(tokenizer, ("e",), len(prompt))

    def stops(reply: str) -> bool:
        ids = prompt + tokenizer(reply, add_special_tokens=False)["input_ids"]
        return bool(criterion(torch.tensor([ids]), None)[0])

    # "<|begin_of_text|>" is one special token whose raw text holds an "e"; "hello" is the prompt's
    assert not stops("<|begin_of_text|>") and not stops("g")
    assert stops("<|begin_of_text|>ge") and stops("green")


def test_four_requests_at_once_with_concurrency_two_are_all_answered(client):
    def ask(number: int) -> str:
        return (
            client.chat.completions.create(
                model="quickstart",
                messages=[{"role": "user", "content": f"request {number}"}],
                temperature=0,
                max_tokens=4,
            )
            .choices[0]
            .finish_reason
        )

    with ThreadPoolExecutor(4) as pool:
        reasons = list(pool.map(ask, range(4)))
    assert len(reasons) == 4 and all(reason in ("stop", "length") for reason in reasons)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "quickstart"}, 400, "messages"),
        ({"model": "quickstart", "messages": []}, 400, "messages"),
        (
            {"model": "quickstart", "messages": [{"role": "user", "content": "hi"}], "temperature": 3},
            400,
            "temperature",
        ),
        ({"model": "quickstart", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
        (
            {"model": "quickstart", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000},
            400,
            "max_tokens",
        ),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    ],
)
def test_a_malformed_request_is_a_4xx_with_openai_s_error_body(served, body, status, param):
    code, answer = call(f"{served}/chat/completions", json.dumps(body).encode())
    assert code == status
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert error["type"] == "invalid_request_error" and "Traceback" not in error["message"]


def test_a_body_that_is_not_json_is_a_400(served):
    code, answer = call(f"{served}/chat/completions", b"{not json")
    assert code == 400 and answer["error"]["type"] == "invalid_request_error"


def test_a_wrong_or_missing_key_is_a_401(served):
    wrong = openai.OpenAI(base_url=served, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401 and caught.value.body["code"] == "invalid_api_key"
    code, answer = call(f"{served}/models", key=None)
    assert code == 401 and answer["error"]["code"] == "invalid_api_key"


def test_the_stop_cutter_holds_back_what_may_become_a_stop_string():
    from ftc.serve.backends import StopCutter

    cutter = StopCutter(("END", "xy"))
    assert [cutter.feed(piece) for piece in ("ab", "cE", "N", "q", "E", "ND rest")] == ["ab", "c", "", "ENq", "", ""]
    assert cutter.stopped and cutter.flush() == ""
    open_ended = StopCutter(("END",))
    assert open_ended.feed("toE") == "to" and open_ended.flush() == "E" and not open_ended.stopped
