"""train.optimizer's combinations: what each optimizer cannot run with is refused at its key, with the reason."""

from __future__ import annotations

import pytest

from ftc.spec import parse_spec
from tests.specs import VALID, refusal, replace

FULL = replace(
    replace(VALID, 'method = "lora"', 'method = "full"'), '[lora]\nrank = 8\nalpha = 16\ntarget = "all"\n', ""
)


def _with(optimizer: str, text: str = FULL, extra: str = "") -> str:
    return replace(text, "seed = 42", f'seed = 42\noptimizer = "{optimizer}"') + extra


@pytest.mark.parametrize("optimizer", ["galore_adamw", "galore_adamw_8bit", "apollo_adamw", "adam_mini", "muon"])
def test_the_weight_matrix_optimizers_refuse_an_adapter(optimizer):
    found = refusal(_with(optimizer, VALID))
    assert (found.path, found.code) == ("train.optimizer", "E-CONFLICT")
    assert f"train.optimizer = {optimizer!r}" in found.message and "train.method = 'lora'" in found.message


def test_badam_trains_the_full_model_only():
    found = refusal(_with("badam", replace(FULL, 'method = "full"', 'method = "freeze"')))
    assert found.path == "train.optimizer"
    assert "chooses the blocks that train itself" in found.message


@pytest.mark.parametrize(
    ("optimizer", "strategy", "why"),
    [
        ("galore_adamw", "zero2", "flat shards"),
        ("apollo_adamw", "fsdp", "flat shards"),
        ("muon", "zero3", "split into shards"),
        ("adam_mini", "zero1", "flatten"),
        ("badam", "ddp", "DDP's fixed reducer"),
    ],
)
def test_a_strategy_the_optimizer_cannot_run_under_is_refused_at_the_strategy(optimizer, strategy, why):
    found = refusal(_with(optimizer, replace(FULL, "seed = 42", f'seed = 42\nstrategy = "{strategy}"')))
    assert (found.path, found.code) == ("train.strategy", "E-CONFLICT")
    assert why in found.message


def test_an_optimizer_that_steps_on_the_device_refuses_offload():
    found = refusal(_with("muon", replace(FULL, "seed = 42", 'seed = 42\noffload = "optimizer"')))
    assert found.path == "train.offload"


def test_a_section_for_another_optimizer_is_refused_at_the_section():
    found = refusal(FULL + "\n[galore]\nrank = 16\n")
    assert (found.path, found.message) == ("galore", "[galore] is set but train.optimizer is 'adamw'")
    assert found.hint == "set train.optimizer = 'galore_adamw' or 'galore_adamw_8bit', or remove [galore]"


def test_layerwise_stepping_refuses_an_accumulating_micro_batch():
    text = _with(
        "galore_adamw", replace(FULL, "seed = 42", "seed = 42\nmicro_batch_size = 4"), "\n[galore]\nlayerwise = true\n"
    )
    found = refusal(text)
    assert found.path == "galore.layerwise"
    assert "cannot accumulate gradients" in found.message


def test_badam_ratio_mode_is_refused_with_what_breaks():
    found = refusal(_with("badam", extra='\n[badam]\nmode = "ratio"\n'))
    assert found.path == "badam.mode"
    assert "sparse gradients" in found.message


def test_each_optimizer_with_its_section_is_a_valid_spec():
    for optimizer, section in [
        ("galore_adamw", '[galore]\nrank = 64\ntarget = ["q_proj", "v_proj"]\n'),
        ("apollo_adamw", '[apollo]\nrank = 1\nscale_type = "tensor"\nscale = 128.0\n'),
        ("badam", '[badam]\nswitch_every = 100\nswitch_mode = "random"\n'),
        ("muon", "[muon]\nmomentum = 0.9\n"),
        ("adam_mini", ""),
    ]:
        spec = parse_spec(_with(optimizer, extra="\n" + section), "job.toml")
        assert spec.train.optimizer == optimizer


@pytest.mark.parametrize("optimizer", ["galore_adamw", "apollo_adamw", "adam_mini", "muon"])
def test_the_weight_matrix_optimizers_run_for_full_fine_tuning(optimizer):
    found = refusal(_with(optimizer, replace(FULL, 'method = "full"', 'method = "freeze"')))
    assert found.path == "train.optimizer"
    assert found.hint == "use train.method = 'full', or another optimizer"
