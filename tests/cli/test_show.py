"""The plan's table as people read it: the limits line."""

from ftc.cli.show import limits_line
from ftc.compiler.plan import Decision, HardwareRef, Plan


def plan_with(limits: dict[str, int], checkpointing: bool) -> Plan:
    kept = Decision(1, "test")
    return Plan(
        hardware=HardwareRef("H100-80GB"),
        backend=Decision("cuda", "test"),
        precision=Decision("bf16", "test"),
        strategy=Decision("single", "test"),
        world_size=kept,
        micro_batch_size=kept,
        gradient_accumulation_steps=kept,
        gradient_checkpointing=Decision(checkpointing, "test"),
        limits=limits,
    )


def test_limits_line_gives_the_plans_own_limit_then_the_other_checkpointing_choice():
    limits = {
        "max_micro_batch_size": 4,
        "max_cutoff_len": 9507,
        "max_micro_batch_size_with_checkpointing": 56,
        "max_cutoff_len_with_checkpointing": 81741,
        "max_micro_batch_size_without_checkpointing": 4,
        "max_cutoff_len_without_checkpointing": 9507,
    }
    assert limits_line(plan_with(limits, checkpointing=False)) == (
        "limits: micro-batch up to 4 at this cutoff_len (56 with gradient checkpointing); "
        "cutoff_len up to 9,507 at micro-batch 1 (81,741 with gradient checkpointing)"
    )
    nothing_without = limits | {"max_micro_batch_size_without_checkpointing": 0}
    assert "up to 4 at this cutoff_len (none without gradient checkpointing)" in limits_line(
        plan_with(nothing_without, checkpointing=True)
    )


def test_limits_line_of_a_plan_json_that_predates_the_variants():
    older = plan_with({"max_micro_batch_size": 4, "max_cutoff_len": 9507}, checkpointing=False)
    assert (
        limits_line(older) == "limits: micro-batch up to 4 at this cutoff_len; cutoff_len up to 9,507 at micro-batch 1"
    )
