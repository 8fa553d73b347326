"""The tiny model and tokenizer, built once per test session (a few seconds, offline), and run folders of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from ftc.compiler.plan import Plan
from ftc.spec.models import Spec
from tests.tiny_runs import cpu_plan


@pytest.fixture(autouse=True)
def prepared_data_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own cache of prepared data, so that none reads what another prepared (nor a user's)."""
    folder = tmp_path_factory.mktemp("ftc-cache")
    monkeypatch.setenv("FTC_CACHE", str(folder))
    return folder / "prepared"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ftc.quickstart.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """Shared: tests must not change it (use_template sets chat_template; load a fresh one for that)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def run_folder():
    """Write a run folder as a target would: `run_folder(spec, plan)` → the folder spec["output"]["dir"],
    holding spec.toml and plan.json (the CPU plan unless given). Specs come from `tests.tiny_runs.tiny_spec`."""

    def write(spec: dict[str, Any], plan: Plan | None = None) -> Path:
        Spec.model_validate(spec)  # the runtime is only ever handed valid specs
        run_dir = Path(spec["output"]["dir"])
        run_dir.mkdir(parents=True)
        (run_dir / "spec.toml").write_text(tomli_w.dumps(spec), encoding="utf-8")
        (run_dir / "plan.json").write_text(json.dumps((plan or cpu_plan()).to_dict()), encoding="utf-8")
        return run_dir

    return write
