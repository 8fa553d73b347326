from pathlib import Path

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.batch import split_batch
from ftc.errors import FtcError
from ftc.spec import parse_spec
from tests.specs import VALID, replace


def plan_for(text: str = VALID, hardware: str = "cpu"):
    return compile_plan(parse_spec(text, "job.toml"), parse_hardware(hardware))


def test_cpu_plan_decides_everything_with_a_reason():
    plan = plan_for()
    assert plan.backend.value == "cpu"
    assert plan.precision.value == "fp32"
    assert plan.strategy.value == "single"
    assert plan.world_size.value == 1
    assert plan.gradient_checkpointing.value is False
    assert plan.micro_batch_size.value * plan.gradient_accumulation_steps.value == 16
    assert plan.micro_batch_size.value == 8  # the largest divisor of 16 within the CPU's cap
    assert all(d.reason for d in plan.decisions().values())


def test_plan_round_trips_through_json_shape():
    from ftc.compiler import Plan

    plan = plan_for()
    assert Plan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize("global_batch, micro, accumulation", [(1, 1, 1), (12, 6, 2), (7, 7, 1), (64, 8, 8), (9, 3, 3)])
def test_micro_times_accumulation_makes_the_global_batch(global_batch, micro, accumulation):
    plan = plan_for(replace(VALID, "global_batch_size = 16", f"global_batch_size = {global_batch}"))
    assert (plan.micro_batch_size.value, plan.gradient_accumulation_steps.value) == (micro, accumulation)


def test_spec_overrides_are_kept_and_say_so():
    text = replace(VALID, "global_batch_size = 16", "global_batch_size = 16\nmicro_batch_size = 2")
    text = replace(text, "seed = 42", 'seed = 42\nprecision = "bf16"\ngradient_checkpointing = true')
    plan = plan_for(text)
    assert plan.micro_batch_size.value == 2 and plan.gradient_accumulation_steps.value == 8
    assert plan.precision.value == "bf16" and plan.gradient_checkpointing.value is True
    assert "set in the spec" in plan.micro_batch_size.reason


def test_micro_batch_that_cannot_divide_names_the_nearest_valid_values():
    with pytest.raises(FtcError) as caught:
        plan_for(replace(VALID, "global_batch_size = 16", "global_batch_size = 16\nmicro_batch_size = 3"))
    assert "does not divide" in caught.value.message
    assert caught.value.hint == "micro_batch_size 2 or 4, or global_batch_size 15 or 18"


def test_global_batch_must_divide_across_processes():
    with pytest.raises(FtcError) as caught:
        split_batch(global_batch=10, world=4, ceiling=8, requested_micro=None)
    assert caught.value.hint == "use a multiple of 4, e.g. 8, 12"


def test_fp16_on_the_cpu_is_refused_with_alternatives():
    with pytest.raises(FtcError) as caught:
        plan_for(replace(VALID, "seed = 42", 'seed = 42\nprecision = "fp16"'))
    assert "not supported on cpu" in caught.value.message and "fp32" in caught.value.hint


@pytest.mark.parametrize(
    "text, name, count, nodes", [("cpu", "cpu", 1, 1), ("1xCPU", "cpu", 1, 1), ("1 × cpu", "cpu", 1, 1)]
)
def test_hardware_names_parse(text, name, count, nodes):
    ref = parse_hardware(text)
    assert (ref.name, ref.devices_per_node, ref.nodes) == (name, count, nodes)


def test_unknown_hardware_suggests_known_names():
    with pytest.raises(FtcError) as caught:
        parse_hardware("cpuu")
    assert caught.value.hint == "did you mean 'cpu'?"


def test_several_cpu_processes_replicate_over_gloo_and_keep_the_global_batch():
    plan = plan_for(hardware="2xcpu")
    assert (plan.strategy.value, plan.world_size.value) == ("ddp", 2)
    assert plan.micro_batch_size.value * plan.gradient_accumulation_steps.value * 2 == 16


@pytest.mark.parametrize("strategy", ["fsdp", "zero1", "zero2", "zero3"])
def test_several_cpu_processes_shard_with_fsdp_or_zero_when_asked(strategy):
    plan = plan_for(VALID.replace("[train]\n", f'[train]\nstrategy = "{strategy}"\n'), hardware="2xcpu")
    assert (plan.strategy.value, plan.backend.value, plan.offload.value) == (strategy, "cpu", "none")
    assert "over gloo" in plan.strategy.reason


def test_the_cpu_estimate_shards_what_the_strategy_shards():
    from ftc.models.lookup import architecture_for

    def memory(strategy: str):
        spec = parse_spec(
            replace(VALID, 'method = "lora"', 'method = "full"').replace(
                "[train]\n", f'[train]\nstrategy = "{strategy}"\n'
            ),
            "job.toml",
        )
        return compile_plan(spec, parse_hardware("2xcpu"), architecture_for(spec, Path("."))).memory.terms

    ddp, zero2, zero3 = memory("ddp"), memory("zero2"), memory("zero3")
    assert zero2["optimizer"] == pytest.approx(ddp["optimizer"] / 2)  # the moments split over 2 processes
    assert zero3["weights"] < ddp["weights"] and memory("fsdp") == zero3


def test_several_cpu_processes_refuse_the_single_strategy():
    with pytest.raises(FtcError, match="'single' on 2 CPU processes") as caught:
        plan_for(VALID.replace("[train]\n", '[train]\nstrategy = "single"\n'), hardware="2xcpu")
    assert "ZeRO" in caught.value.hint


@pytest.mark.parametrize(
    "text, name", [("8xH100-80GB", "H100-80GB"), ("ascend 910b-64gb", "Ascend910B-64GB"), ("t4-16gb", "T4-16GB")]
)
def test_accelerators_are_registered_by_name(text, name):
    from ftc.compiler.hardware import HARDWARE

    ref = parse_hardware(text, nodes=2)
    assert ref.name == name and ref.nodes == 2
    record = HARDWARE[name]
    assert record.memory_gib > 10 and record.peak_tflops > 10 and record.context_gib > 0


def test_every_accelerator_record_is_consistent():
    from ftc.compiler.hardware import HARDWARE

    for record in HARDWARE.values():
        assert record.backend in ("cpu", "cuda", "npu")
        if record.backend == "cuda" and not record.bf16:
            assert not record.flash_attention  # pre-Ampere cards have neither
        if record.fp8:
            assert record.bf16


KTO = replace(replace(VALID, 'stage = "sft"', 'stage = "kto"'), 'format = "alpaca"', 'format = "kto"')


def test_kto_never_plans_one_example_per_micro_batch():
    # 3 examples per process: its divisors are 1 and 3, and the CPU's cap (8) allows 3
    assert plan_for(replace(KTO, "global_batch_size = 16", "global_batch_size = 3")).micro_batch_size.value == 3
    micro, steps = split_batch(global_batch=22, world=1, ceiling=1, requested_micro=None, least=2)
    assert (micro.value, steps.value) == (2, 11)  # above the speed cap rather than below the stage's least
    with pytest.raises(FtcError) as caught:
        plan_for(replace(KTO, "global_batch_size = 16", "global_batch_size = 2"), "2xcpu")
    assert "at least 2 examples per micro-batch" in caught.value.message and "gives each 1" in caught.value.message
    assert caught.value.hint == "raise train.global_batch_size to 4 or more"


def test_kto_on_a_device_where_only_one_example_fits_is_refused_at_plan_time():
    from dataclasses import replace as changed

    from ftc.compiler.memory.estimate import estimate_memory
    from ftc.models.lookup import architecture_for

    spec = parse_spec(KTO, "job.toml")

    def only_one_fits(inputs):  # the real estimate, but anything above micro-batch 1 overflows
        found = estimate_memory(inputs)
        return changed(found, reserved_gib=1000.0) if inputs.micro_batch_size > 1 else found

    arch = architecture_for(spec, Path("."))
    with pytest.raises(FtcError) as caught:
        compile_plan(spec, parse_hardware("1xA100-80GB"), arch, estimate=only_one_fits)
    assert "needs at least 2 examples per micro-batch" in caught.value.message
    assert "qlora" in caught.value.hint
    sft = compile_plan(parse_spec(VALID, "job.toml"), parse_hardware("1xA100-80GB"), arch, estimate=only_one_fits)
    assert sft.micro_batch_size.value == 1


def llama3_8b_qlora_at_2048() -> str:
    text = replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B")
    text = replace(text, 'method = "lora"', 'method = "qlora"')
    text = replace(text, "rank = 8", "rank = 32")
    return replace(text, "cutoff_len = 1024", "cutoff_len = 2048")


def test_limits_never_make_a_bigger_card_look_smaller():
    from ftc.compiler.architectures import find_architecture

    spec = parse_spec(llama3_8b_qlora_at_2048(), "job.toml")
    arch = find_architecture(spec.model.name_or_path)
    h100, l4 = (compile_plan(spec, parse_hardware(card), arch) for card in ("1xH100-80GB", "1xL4-24GB"))
    # The H100 needs no checkpointing at 2048 tokens and the L4 does, so their own limits are not comparable...
    assert (h100.gradient_checkpointing.value, l4.gradient_checkpointing.value) == (False, True)
    assert h100.limits["max_cutoff_len"] <= l4.limits["max_cutoff_len"]
    # ...but under the same choice the card with 3.5x the memory holds more, both ways, up to the model's
    # 8192 positions, which cap the context on both.
    for choice in ("with", "without"):
        micro = f"max_micro_batch_size_{choice}_checkpointing"
        assert h100.limits[micro] > l4.limits[micro]
        longest = f"max_cutoff_len_{choice}_checkpointing"
        assert h100.limits[longest] >= l4.limits[longest] and h100.limits[longest] == 8192
    assert l4.limits["max_micro_batch_size_without_checkpointing"] == 0  # nothing fits the L4 at 2048 without it
    for chosen in (h100, l4):
        own = "with" if chosen.gradient_checkpointing.value else "without"
        for key in ("max_cutoff_len", "max_micro_batch_size"):
            assert chosen.limits[key] == chosen.limits[f"{key}_{own}_checkpointing"]
        as_json = chosen.to_dict()["limits"]
        assert {"max_cutoff_len_with_checkpointing", "max_cutoff_len_without_checkpointing"} <= set(as_json)
