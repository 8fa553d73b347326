"""Load the model, pick the engine, check what it needs, and run the app under uvicorn."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from ftc.errors import RuntimeUserError
from ftc.serve.backends import AUTO, Backend, Engine, choose_engine
from ftc.serve.hosts import is_loopback

VLLM_MEMORY_SHARE = 0.9  # vLLM's default gpu_memory_utilization: the share of the device it may take


def read_api_key(
    api_key_env: str | None, host: str, err: TextIO = sys.stderr, flag: str = "--api-key-env", what: str = "serving"
) -> str | None:
    """The key from the environment variable named; a host beyond loopback must have one. `flag` and `what`
    name the option and the server in the messages (`ftc board` asks the same with --auth-env)."""
    if not is_loopback(host):
        print(f"warning: {what} on {host}, reachable beyond this machine", file=err, flush=True)
        if api_key_env is None:
            raise RuntimeUserError(
                f"--host {host} is reachable from other machines, and no API key guards it",
                f"pass {flag} NAME (an environment variable holding the key), or bind 127.0.0.1",
            )
    if api_key_env is None:
        return None
    key = os.environ.get(api_key_env, "")
    if not key.strip():
        raise RuntimeUserError(
            f"{flag} {api_key_env}: that environment variable is unset or empty",
            f"export {api_key_env}=... before starting the server",
        )
    return key.strip()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def load_backend(target: Path, engine: Engine, checkpoint: str | None, name: str | None) -> Backend:
    if engine.name == "vllm":
        return _vllm_backend(target, checkpoint, name)
    from ftc.runtime.chat import load_chat_model
    from ftc.serve.backends import TransformersBackend

    loaded = load_chat_model(target, checkpoint, merge=False)  # a LoRA run: its base with the adapter on top
    return TransformersBackend(loaded.model, loaded.tokenizer, name or loaded.name)


def _vllm_backend(target: Path, checkpoint: str | None, name: str | None) -> Backend:
    """vLLM serves the base with the run's adapter; the planned memory is checked against the device first."""
    from ftc.serve.backends import VllmBackend

    base, adapter, estimate = vllm_inputs(target, checkpoint)
    device = _device_memory_gib()
    if device is not None and estimate > device * VLLM_MEMORY_SHARE:
        raise RuntimeUserError(
            f"serving needs about {estimate:.1f} GiB (weights, adapter and one full-length KV cache), over "
            f"{VLLM_MEMORY_SHARE:.0%} of this GPU's {device:.1f} GiB",
            "serve with --backend transformers, or on a larger GPU",
        )
    return VllmBackend(base, adapter, name or target.resolve().name, None)


def vllm_inputs(target: Path, checkpoint: str | None) -> tuple[str, str | None, float]:
    """(base model, adapter folder or None, the planned GiB) for a run folder or a model folder."""
    from ftc.compiler.adapters import adapter_from_config
    from ftc.compiler.architectures import architecture_from_config
    from ftc.compiler.memory.serving import serving_memory
    from ftc.compiler.params import lora_parameters
    from ftc.runs.folder import load_run_folder
    from ftc.runtime.export import is_adapter, trained_folder

    if (target / "spec.toml").is_file():
        folder = load_run_folder(target)
        trained = trained_folder(folder, checkpoint)
        adapter = str(trained) if is_adapter(trained) else None
        base = folder.spec.model.name_or_path if adapter else str(trained)
        precision = str(folder.plan.precision.value)
    else:
        trained, adapter, base, precision = target, None, str(target), "bf16"
    config_dir = Path(base) if Path(base).is_dir() else trained
    arch = architecture_from_config(
        json.loads((config_dir / "config.json").read_text(encoding="utf-8")), str(config_dir)
    )
    extra = 0
    if adapter:
        shape = adapter_from_config(json.loads((trained / "adapter_config.json").read_text(encoding="utf-8")), adapter)
        extra = lora_parameters(arch, shape.rank, shape.targets)
    length = arch.max_position_embeddings or 4096
    precision = precision if precision in ("bf16", "fp16") else "bf16"  # vLLM serves in half precision
    return base, adapter, serving_memory(arch, precision, length, adapter_parameters=extra).total_gib


def _device_memory_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1024**3


def serve(
    target: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = AUTO,
    api_key_env: str | None = None,
    concurrency: int = 1,
    checkpoint: str | None = None,
    name: str | None = None,
) -> None:
    import uvicorn

    from ftc.serve.app import build_app

    api_key = read_api_key(api_key_env, host)
    engine = choose_engine(backend, cuda_available())
    loaded = load_backend(target, engine, checkpoint, name)
    app = build_app(loaded, api_key=api_key, concurrency=concurrency)
    print(f"serving {loaded.name!r} with {engine.name} on http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
