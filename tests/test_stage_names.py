"""Nothing in ftc decides by a stage's or a method's name but its record (ftc.stages, ftc.methods) and
the stage's own runtime module: the rest asks the record (`STAGES[name].paired`, `METHODS[name].has_adapter`)."""

from __future__ import annotations

import ast

from ftc.methods import METHODS
from ftc.optimizers import OPTIMIZERS
from ftc.stages import STAGES
from tests.name_branches import uses_in, uses_of

# An importer's tables translate another tool's vocabulary into ours: its stage, method and optimizer names are
# what it reads and writes, not behaviour that belongs in a record.
_EVERY_NAME = set(STAGES) | set(METHODS) | set(OPTIMIZERS)
IMPORTERS = {f"ftc/importers/{tool}.py": _EVERY_NAME for tool in ("llamafactory", "axolotl")}


def test_no_stage_name_is_branched_on_outside_its_record_and_its_runtime_module():
    allowed = {"ftc/stages.py": set(STAGES)} | {f"ftc/runtime/stages/{name}.py": {name} for name in STAGES}
    allowed |= IMPORTERS | {"ftc/spec/dataset_registry.py": {"kto"}}  # there, "kto" is the data kind a stage reads
    found = uses_of(set(STAGES), allowed)
    assert not found, "ask the stage's record (ftc.stages) instead:\n" + "\n".join(map(str, found))


def test_the_scan_finds_branches_and_tables_but_not_the_value_sets():
    source = (
        'if stage == "ppo" or stage in ("dpo", "x"):\n'
        "    pass\n"
        'TABLE = {"kto": 2, "rm": 1}\n'
        'match stage:\n    case "orpo":\n        pass\n'
        'Stage = Literal["pt", "sft"]\n'
    )
    found = sorted(str(use) for use in uses_in(ast.parse(source), set(STAGES), "m.py"))
    assert found == [
        "m.py:1: branch on dpo",
        "m.py:1: branch on ppo",
        "m.py:3: table on kto, rm",
        "m.py:5: branch on orpo",
    ]


def test_no_method_name_is_branched_on_outside_the_records_and_the_stages_runtime_modules():
    records = {"ftc/methods.py": set(METHODS), "ftc/stages.py": set(METHODS)}  # a stage's record names its methods
    allowed = records | {f"ftc/runtime/stages/{name}.py": set(METHODS) for name in STAGES} | IMPORTERS
    found = uses_of(set(METHODS), allowed)
    assert not found, "ask the method's record (ftc.methods) instead:\n" + "\n".join(map(str, found))


def test_no_optimizer_name_is_branched_on_outside_its_record_and_its_runtime_builder():
    # ppo's own loop steps with torch's AdamW and says so by name; the builders' table is the runtime's record.
    allowed = {"ftc/optimizers.py": set(OPTIMIZERS), "ftc/runtime/optimizers.py": set(OPTIMIZERS)}
    allowed |= {f"ftc/runtime/stages/{name}.py": {"adamw"} for name in STAGES} | IMPORTERS
    found = uses_of(set(OPTIMIZERS) - {"adamw"}, allowed) + uses_of({"adamw"}, allowed)
    assert not found, "ask the optimizer's record (ftc.optimizers) instead:\n" + "\n".join(map(str, found))
