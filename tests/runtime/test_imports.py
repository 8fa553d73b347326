"""The cheap entry points stay cheap: no torch behind the validator or the launcher's stage check."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "matplotlib")


def modules_loaded_by(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_registries_import_nothing_heavy():
    loaded = modules_loaded_by(
        "import ftc.spec.chat_templates, ftc.runtime, ftc.runtime.stages, ftc.runtime.__main__, "
        "ftc.runtime.stages.sft, ftc.runtime.stages.pt, ftc.runtime.stages.ppo, ftc.runtime.stages.grpo, "
        "ftc.runtime.model.rewards"
    )
    assert not loaded & set(HEAVY)


def test_stage_registry_names_sft():
    import typing

    from ftc.runtime.stages import METHODS, STAGES
    from ftc.spec.models import Method, Stage

    assert set(STAGES) == set(typing.get_args(Stage))  # every stage of the spec language runs

    assert "sft" in STAGES and STAGES["sft"].module == "ftc.runtime.stages.sft"
    assert set(METHODS) == set(typing.get_args(Method)) >= {"full", "freeze", "lora", "qlora", "oft"}


def test_the_data_check_imports_nothing_heavy(tmp_path):
    # `ftc launch` and `ftc validate --data` read every record before anything else: it must stay cheap.
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "Say hi.", "output": "Hi."}\n{"instruction": "cut', encoding="utf-8")
    loaded = modules_loaded_by(
        "from ftc.records.check import check_data; from ftc.spec.models import DataSection, DatasetSection; "
        f"assert check_data(DataSection(datasets=[DatasetSection(path={str(data)!r})])).problems == 1; "
        "import ftc.cli.validate"
    )
    assert not loaded & set(HEAVY)
