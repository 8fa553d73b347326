"""Which engine serves, and the refusals before anything loads: vLLM without CUDA or vllm, an open host
without a key, a plan that does not fit the GPU."""

from __future__ import annotations

import io

import pytest

from ftc.compiler.architectures import find_architecture
from ftc.compiler.memory.serving import serving_memory
from ftc.errors import RuntimeUserError
from ftc.serve.backends import choose_engine
from ftc.serve.hosts import is_loopback
from ftc.serve.server import read_api_key


def installed(*names):
    return lambda name: name in names


def test_auto_picks_vllm_only_with_cuda_and_vllm():
    assert choose_engine("auto", True, installed("transformers", "vllm")).name == "vllm"
    assert choose_engine("auto", False, installed("transformers", "vllm")).name == "transformers"
    assert choose_engine("auto", True, installed("transformers")).name == "transformers"


@pytest.mark.parametrize(
    ("cuda", "packages", "lacks"), [(False, ("vllm",), "CUDA"), (True, (), "vllm"), (False, (), "vllm and CUDA")]
)
def test_vllm_asked_for_without_cuda_or_vllm_is_refused(cuda, packages, lacks):
    with pytest.raises(RuntimeUserError, match="needs CUDA and vllm") as caught:
        choose_engine("vllm", cuda, installed("transformers", *packages))
    assert caught.value.message.endswith(f"lacks {lacks}") and "--backend transformers" in caught.value.hint


def test_an_open_host_needs_a_key_and_is_warned_about(monkeypatch):
    err = io.StringIO()
    with pytest.raises(RuntimeUserError, match="no API key"):
        read_api_key(None, "0.0.0.0", err)
    assert "warning" in err.getvalue()
    monkeypatch.setenv("SERVE_KEY", "sk-1")
    assert read_api_key("SERVE_KEY", "0.0.0.0", io.StringIO()) == "sk-1"
    assert read_api_key(None, "127.0.0.1") is None and is_loopback("::1") and not is_loopback("10.0.0.1")
    with pytest.raises(RuntimeUserError, match="unset or empty"):
        read_api_key("NO_SUCH_VARIABLE_HERE", "127.0.0.1")


def test_serving_memory_counts_weights_and_one_full_length_cache():
    arch = find_architecture("meta-llama/Meta-Llama-3-8B")
    planned = serving_memory(arch, "bf16", 8192)
    # Llama-3-8B: 8,030,261,248 parameters in bf16; K and V of 32 layers × 8192 positions × 1024 wide in bf16;
    # the prefill's gate, up and product over 8192 × 14336; one row of fp32 logits over 128,256 tokens.
    assert planned.weights == 8_030_261_248 * 2
    assert planned.cache == 2 * 32 * 8192 * 1024 * 2 + 3 * 8192 * 14336 * 2
    assert planned.logits == 128_256 * 4


def test_without_a_key_the_server_answers_only_to_a_loopback_host_name():
    """DNS rebinding: a page on a name that resolves to this machine would be same-origin with the server."""
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from ftc.serve.app import build_app

    client = TestClient(build_app(SimpleNamespace(name="tiny")), base_url="http://127.0.0.1:8000")
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert client.get("/v1/models", headers={"host": host}).json()["data"][0]["id"] == "tiny"
    refused = client.get("/v1/models", headers={"host": "evil.example:8000"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "host_not_allowed"
    keyed = TestClient(build_app(SimpleNamespace(name="tiny"), api_key="k"), base_url="http://10.0.0.5:8000")
    assert keyed.get("/v1/models", headers={"authorization": "Bearer k"}).status_code == 200  # a key guards it
