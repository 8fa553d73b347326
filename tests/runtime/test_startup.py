"""A fresh runtime process leaves out bitsandbytes unless the run quantizes, and freezes torch's objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import gc, sys
from ftc.runtime.distributed.startup import prepare_fresh_process
from ftc.spec.models import Spec
spec = Spec.model_validate({{
    "model": {{"name_or_path": "m"}},
    "data": {{"datasets": [{{"path": "d.json"}}]}},
    "train": {{"method": {method!r}, "optimizer": {optimizer!r}, "max_steps": 1}},
}})
prepare_fresh_process(spec)
frozen = gc.get_freeze_count()
import peft, transformers
from transformers.utils import is_bitsandbytes_available
loaded = sys.modules.get("bitsandbytes") is not None
print(loaded, is_bitsandbytes_available(), frozen > 10000)
"""


def fresh_process(method: str, optimizer: str = "adamw") -> list[str]:
    probe = PROBE.format(method=method, optimizer=optimizer)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_run_that_quantizes_nothing_never_loads_bitsandbytes():
    assert fresh_process("lora") == ["False", "False", "True"]


def test_a_run_that_quantizes_finds_bitsandbytes():
    pytest.importorskip("bitsandbytes")
    loaded, available, frozen = fresh_process("qlora")
    assert available == "True" and frozen == "True"


@pytest.mark.parametrize(
    ("method", "optimizer", "needed"),
    [("full", "adamw", False), ("lora", "adamw", False), ("freeze", "adamw_8bit", True), ("qlora", "adamw", True),
     ("lora", "paged_adamw_8bit", True)],
)  # fmt: skip
def test_bitsandbytes_is_needed_for_quantized_weights_or_optimizer_states(method, optimizer, needed):
    from ftc.install.extras import needs_bitsandbytes
    from ftc.spec.models import Spec

    spec = Spec.model_validate(
        {
            "model": {"name_or_path": "m"},
            "data": {"datasets": [{"path": "d.json"}]},
            "train": {"method": method, "optimizer": optimizer, "max_steps": 1},
        }
    )
    assert needs_bitsandbytes(spec) is needed
