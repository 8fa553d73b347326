"""Planning for accelerators: the decisions, tested against a memory model simple enough to check by hand.

The real estimate has its own tests (test_memory.py); here a fake one isolates the search: which
layout, whether to checkpoint, which micro-batch, and what is said when nothing fits.
"""

import pytest

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import find_architecture
from ftc.compiler.fitting import largest_fitting
from ftc.compiler.plan import MemoryEstimate, Plan
from ftc.errors import FtcError
from ftc.spec import parse_spec
from tests.specs import VALID, replace

LLAMA3_8B = find_architecture("meta-llama/Meta-Llama-3-8B-Instruct")
H100_BUDGET = 79.6 * 0.9  # capacity less the planner's 10 % headroom


def fake_estimator(states: dict[str, float], per_row: float = 8.0, per_row_checkpointed: float = 2.0, fixed=0.0):
    """GiB = model states of the layout + activations per row × micro-batch × seq_len / 1024.

    States are given for 8 devices; ZeRO-3 and FSDP states scale with 8 / world_size.
    """

    def estimate(inputs) -> MemoryEstimate:
        row = per_row_checkpointed if inputs.gradient_checkpointing else per_row
        key = inputs.strategy + ("+" + inputs.offload if inputs.offload != "none" else "")
        sharded = inputs.strategy in ("zero3", "fsdp")
        model_states = states[key] * (8 / inputs.world_size if sharded else 1)
        activations = inputs.micro_batch_size * row * inputs.seq_len / 1024
        total = model_states + activations + fixed
        terms = {"weights": model_states, "activations": activations}
        return MemoryEstimate(terms, total, total, inputs.capacity_gib, 0.0, ())

    return estimate


def plan(spec_text: str = VALID, hardware: str = "8xH100-80GB", estimate=None, nodes: int = 1) -> Plan:
    spec = parse_spec(spec_text, "job.toml")
    return compile_plan(spec, parse_hardware(hardware, nodes), LLAMA3_8B, estimate)


STATES = {"ddp": 100, "zero1": 70, "zero2": 50, "zero3": 20, "zero2+optimizer": 15, "zero3+optimizer": 10}
STATES |= {"zero3+optimizer+params": 5, "single": 100, "fsdp": 20, "fsdp+optimizer": 10, "fsdp+optimizer+params": 5}


def test_the_least_sharding_that_fits_is_chosen_and_says_why():
    chosen = plan(estimate=fake_estimator(STATES))
    # ddp (100) and zero1 (70 + 8) do not fit 71.6; zero2 (50 + 8) does, without checkpointing.
    assert chosen.strategy.value == "zero2" and chosen.offload.value == "none"
    assert chosen.gradient_checkpointing.value is False
    assert "ddp would need" in chosen.strategy.reason
    assert chosen.backend.value == "cuda" and chosen.precision.value == "bf16"


def test_micro_batch_is_the_largest_that_fits_and_divides():
    # zero2: 50 + 8 m ≤ 71.64 → m ≤ 2; 16 examples over 8 devices = 2 per process.
    chosen = plan(estimate=fake_estimator(STATES))
    assert chosen.micro_batch_size.value == 2 and chosen.gradient_accumulation_steps.value == 1
    bigger = plan(replace(VALID, "global_batch_size = 16", "global_batch_size = 128"), estimate=fake_estimator(STATES))
    assert bigger.micro_batch_size.value == 2 and bigger.gradient_accumulation_steps.value == 8
    assert bigger.global_batch_size == 128


def test_checkpointing_is_switched_on_only_when_activations_do_not_fit():
    tight = {**STATES, "zero2": 65, "zero3": 64}
    chosen = plan(estimate=fake_estimator(tight))
    # zero2 without checkpointing: 65 + 8 > 71.64; with it: 65 + 2 fits — before sharding further.
    assert (chosen.strategy.value, chosen.gradient_checkpointing.value) == ("zero2", True)
    assert "do not fit" in chosen.gradient_checkpointing.reason


def test_one_device_falls_back_to_offload():
    chosen = plan(hardware="1xH100-80GB", estimate=fake_estimator(STATES))
    assert (chosen.strategy.value, chosen.offload.value) == ("zero2", "optimizer")
    assert "least offload" in chosen.offload.reason


def test_spec_overrides_are_kept_or_refused_with_the_estimate():
    kept = plan(replace(VALID, "seed = 42", 'seed = 42\nstrategy = "zero3"'), estimate=fake_estimator(STATES))
    assert kept.strategy.value == "zero3" and "set in the spec" in kept.strategy.reason
    with pytest.raises(FtcError) as caught:
        plan(
            replace(
                VALID,
                "seed = 42",
                'seed = 42\nmicro_batch_size = 2\nstrategy = "zero3"\ngradient_checkpointing = false',
            ),
            estimate=fake_estimator({**STATES, "zero3": 60}),
        )
    assert "does not fit" in caught.value.message and "GiB" in caught.value.message


def test_a_run_that_cannot_fit_is_a_plan_that_says_so_and_what_would_fit():
    huge = {key: value * 100 for key, value in STATES.items()}
    chosen = plan(hardware="1xH100-80GB", estimate=fake_estimator(huge))
    assert chosen.fits is False
    assert chosen.notes[0].startswith("does not fit: needs")
    # zero3 + offload of everything: 500 GiB for 8 devices, so 4000 on one; 64 devices bring it to 62.5.
    assert "more devices: 64xH100-80GB per node would fit" in chosen.notes
    as_json = chosen.to_dict()
    assert as_json["fits"] is False and as_json["memory"]["per_device_gib"] > as_json["memory"]["capacity_gib"]


def test_limits_answer_how_long_a_context_and_how_large_a_batch():
    chosen = plan(estimate=fake_estimator(STATES))
    # zero2, no checkpointing: 50 + 8 m · s/1024 ≤ 71.64
    assert chosen.limits["max_micro_batch_size"] == 2
    assert chosen.limits["max_cutoff_len"] == int((H100_BUDGET - 50) / 8 * 1024)


def test_qlora_plans_4_bits_and_avoids_zero3():
    text = replace(VALID, 'method = "lora"', 'method = "qlora"')
    chosen = plan(text, estimate=fake_estimator({**STATES, "zero2": 90}))
    assert chosen.quantization_bits.value == 4 and chosen.strategy.value == "fsdp"


@pytest.mark.parametrize(
    "edit, hardware, words",
    [
        (('method = "lora"', 'method = "qlora"'), "8xAscend910B-64GB", "NPU"),
        (('method = "lora"', 'method = "qlora"\nstrategy = "zero3"'), "8xH100-80GB", "ZeRO-3"),
        (('stage = "sft"', 'stage = "ppo"\nstrategy = "zero3"'), "8xH100-80GB", "not sharded by zero3"),
        (('stage = "sft"', 'stage = "ppo"\nstrategy = "fsdp"'), "8xH100-80GB", "not sharded by fsdp"),
        (("Meta-Llama-3-8B-Instruct", "Meta-Llama-3-8B-Instruct-GPTQ"), "8xH100-80GB", None),
    ],
)
def test_known_bad_combinations_are_refused_before_any_gpu_hour(edit, hardware, words):
    text = replace(VALID, *edit)
    if "GPTQ" in text:
        text = replace(text, "seed = 42", 'seed = 42\nstrategy = "zero3"')
    if 'stage = "ppo"' in text:
        text += '\n[ppo]\nreward_model = "runs/rm/model"\n'  # ppo needs one to validate
    spec = parse_spec(text, "job.toml")
    with pytest.raises(FtcError) as caught:
        compile_plan(spec, parse_hardware(hardware), LLAMA3_8B, fake_estimator(STATES))
    assert caught.value.hint
    if words:
        assert words in caught.value.message


def test_ppo_plans_a_replica_per_device_or_says_it_does_not_fit():
    text = replace(VALID, 'stage = "sft"', 'stage = "ppo"') + '\n[ppo]\nreward_model = "runs/rm/model"\n'
    spec = parse_spec(text, "job.toml")
    roomy = fake_estimator({**STATES, "ddp": 40})
    chosen = compile_plan(spec, parse_hardware("8xH100-80GB"), LLAMA3_8B, roomy)
    assert (chosen.strategy.value, chosen.offload.value) == ("ddp", "none")
    crowded = compile_plan(spec, parse_hardware("8xH100-80GB"), LLAMA3_8B, fake_estimator(STATES))
    assert not crowded.fits  # ddp needs 100 GiB; sft would shard with zero2, ppo says it does not fit


def test_an_offload_no_layout_of_the_run_has_is_refused_with_the_ones_it_has():
    text = replace(VALID, 'stage = "sft"', 'stage = "ppo"') + '\n[ppo]\nreward_model = "runs/rm/model"\n'
    text = replace(text, "[train]", '[train]\noffload = "optimizer"')
    with pytest.raises(FtcError) as caught:
        compile_plan(parse_spec(text, "job.toml"), parse_hardware("8xH100-80GB"), LLAMA3_8B, fake_estimator(STATES))
    assert "train.offload = 'optimizer'" in caught.value.message and "replicas" in caught.value.message
    assert caught.value.hint == "use one of: auto, none"


def test_precision_follows_the_hardware():
    v100 = plan(hardware="8xV100-32GB", estimate=fake_estimator({k: v / 4 for k, v in STATES.items()}))
    assert v100.precision.value == "fp16" and "loss scaling" in v100.precision.reason


def test_unknown_shapes_are_an_error_with_a_hint():
    with pytest.raises(FtcError) as caught:
        compile_plan(parse_spec(VALID, "job.toml"), parse_hardware("8xH100-80GB"), None)
    assert "config.json" in caught.value.hint


def test_the_json_plan_keeps_its_contract_and_round_trips():
    chosen = plan(estimate=fake_estimator(STATES))
    data = chosen.to_dict()
    for key in ("backend", "precision", "quantization_bits", "strategy", "offload", "gradient_checkpointing",
                "micro_batch_size", "gradient_accumulation_steps", "global_batch_size", "world_size", "nodes",
                "memory", "time", "reasons", "limits"):  # fmt: skip
        assert key in data
    assert set(data["memory"]) >= {"per_device_gib", "capacity_gib", "host_gib", "terms"}
    assert set(data["time"]) >= {"tokens_per_second", "hours", "gpu_hours"}
    assert Plan.from_dict(data) == chosen


def test_time_estimate_scales_with_devices():
    eight = plan(estimate=fake_estimator(STATES)).time
    sixteen = plan(hardware="8xH100-80GB", nodes=2, estimate=fake_estimator(STATES)).time
    assert sixteen.tokens_per_second == pytest.approx(2 * eight.tokens_per_second, rel=1e-3)
    assert eight.hours > 0 and eight.gpu_hours == pytest.approx(8 * eight.hours, rel=1e-2)


def test_largest_fitting_searches_monotone_predicates():
    assert largest_fitting(lambda n: n <= 37, 1000) == 37
    assert largest_fitting(lambda n: n <= 5000, 1000) == 1000
    assert largest_fitting(lambda n: False, 1000) == 0


# -- the real estimate, end to end: the decisions a user would see for well-known jobs ----------------
def real_plan(edits: dict[str, str], hardware: str, nodes: int = 1) -> Plan:
    text = VALID
    for old, new in edits.items():
        text = replace(text, old, new)
    spec = parse_spec(text, "job.toml")
    arch = find_architecture(spec.model.name_or_path)
    return compile_plan(spec, parse_hardware(hardware, nodes), arch)


def test_llama3_8b_lora_fits_one_24gb_card_by_checkpointing():
    chosen = real_plan({}, "1xA10G-24GB")
    assert chosen.fits and chosen.strategy.value == "single" and chosen.offload.value == "none"
    assert chosen.gradient_checkpointing.value is True
    memory = chosen.memory
    assert memory.terms["weights"] == pytest.approx(14.96, abs=0.01)  # 8.03 B bf16 parameters
    assert memory.reserved_gib <= 22.5 * 0.9 and memory.reserved_gib >= memory.allocated_gib
    assert (
        chosen.limits["max_cutoff_len"] > 1024
        and chosen.limits["max_micro_batch_size"] >= chosen.micro_batch_size.value
    )


def test_llama3_70b_full_needs_sharding_across_two_nodes():
    chosen = real_plan(
        {"Meta-Llama-3-8B-Instruct": "Meta-Llama-3-70B-Instruct", 'method = "lora"': 'method = "full"'},
        "8xH100-80GB",
        nodes=2,
    )
    assert chosen.fits and chosen.strategy.value == "zero3" and chosen.world_size.value == 16
    assert chosen.time.gpu_hours == pytest.approx(16 * chosen.time.hours, rel=1e-2)
    assert chosen.memory.reserved_gib <= 79.6 * 0.9


def test_405b_full_on_one_t4_does_not_fit_and_the_plan_says_so():
    chosen = real_plan(
        {"meta-llama/Meta-Llama-3-8B-Instruct": "meta-llama/Llama-3.1-405B", 'method = "lora"': 'method = "full"'},
        "1xT4-16GB",
    )
    assert chosen.fits is False and chosen.notes[0].startswith("does not fit")
    assert chosen.memory.reserved_gib > 15.0 * 0.9
