"""[ppo]: what ppo and grpo need (a reward model; rewards of some kind; whole groups per batch), keys read
by another stage, and ranges; every mistake located at the key the user must set, naming train.stage."""

from __future__ import annotations

import pytest

from ftc.spec import SpecError, parse_spec
from tests.specs import VALID, replace

PPO = replace(VALID, 'stage = "sft"', 'stage = "ppo"')
GRPO = replace(VALID, 'stage = "sft"', 'stage = "grpo"')


def only(text: str):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "job.toml")
    assert len(caught.value.diagnostics) == 1, [d.format() for d in caught.value.diagnostics]
    return caught.value.diagnostics[0]


def test_ppo_reads_its_section():
    spec = parse_spec(PPO + '\n[ppo]\nreward_model = "runs/rm/model"\nkl_coef = 0.1\ngamma = 0.99\n', "job.toml")
    assert (spec.train.stage, spec.ppo.reward_model, spec.ppo.kl_coef, spec.ppo.gamma) == (
        "ppo",
        "runs/rm/model",
        0.1,
        0.99,
    )
    assert (spec.ppo.lam, spec.ppo.clip_range, spec.ppo.ppo_epochs, spec.ppo.reward_functions) == (0.95, 0.2, 4, [])


def test_ppo_without_a_reward_model_is_reported_at_the_key_to_set():
    d = only(PPO)
    assert (d.path, d.code) == ("ppo.reward_model", "E-MISSING")
    assert "rm" in d.hint


def test_grpo_needs_reward_functions_or_a_reward_model():
    d = only(GRPO)
    assert (d.path, d.code) == ("ppo.reward_functions", "E-MISSING")
    assert "ppo.reward_model" in d.hint
    parse_spec(GRPO + '\n[ppo]\nreward_functions = ["length", "distinct"]\n', "job.toml")
    parse_spec(GRPO + '\n[ppo]\nreward_model = "some/reward-model"\n', "job.toml")


def test_grpo_groups_must_fill_the_batch():
    d = only(GRPO + '\n[ppo]\nreward_functions = ["length"]\nnum_generations = 6\n')  # global_batch_size = 16
    assert (d.line, d.path, d.code) == (30, "ppo.num_generations", "E-CONFLICT")
    parse_spec(GRPO + '\n[ppo]\nreward_functions = ["length"]\nnum_generations = 4\n', "job.toml")


def test_format_reward_needs_a_pattern_that_compiles():
    d = only(GRPO + '\n[ppo]\nreward_functions = ["format"]\n')
    assert (d.path, d.code) == ("ppo.reply_pattern", "E-MISSING")
    d = only(GRPO + '\n[ppo]\nreward_functions = ["format"]\nreply_pattern = "(unclosed"\n')
    assert (d.line, d.path, d.code) == (30, "ppo.reply_pattern", "E-FORMAT")
    d = only(GRPO + '\n[ppo]\nreward_functions = ["lenght"]\n')
    assert (d.line, d.path, d.code) == (29, "ppo.reward_functions[0]", "E-ENUM")


@pytest.mark.parametrize(
    ("text", "key", "readers"),
    [
        (VALID + "\n[ppo]\nkl_coef = 0.3\n", "ppo.kl_coef", "ppo, grpo, not by 'sft'"),
        (PPO + '\n[ppo]\nreward_model = "rm"\nnum_generations = 4\n', "ppo.num_generations", "grpo, not by 'ppo'"),
        (GRPO + '\n[ppo]\nreward_functions = ["length"]\ngamma = 0.9\n', "ppo.gamma", "ppo, not by 'grpo'"),
    ],
)
def test_a_key_another_stage_reads_is_refused(text, key, readers):
    d = only(text)
    assert (d.path, d.code) == (key, "E-CONFLICT") and d.message == f"{key} is read by {readers}"


def test_a_default_value_says_nothing():
    parse_spec(VALID + "\n[ppo]\nkl_coef = 0.05\nreward_functions = []\n", "job.toml")  # a resolved spec writes these


@pytest.mark.parametrize(
    ("data", "key"),
    [("eval_ratio = 0.1", "data.eval_ratio"), ("streaming = true", "data.streaming")],
)
def test_rollout_stages_refuse_what_they_would_ignore(data, key):
    d = only(replace(PPO, "cutoff_len = 1024", f"cutoff_len = 1024\n{data}") + '\n[ppo]\nreward_model = "rm"\n')
    assert (d.line, d.path, d.code) == (7, key, "E-CONFLICT")


def test_rollouts_need_prompts_and_room_to_reply():
    d = only(replace(PPO, 'format = "alpaca"', 'format = "preference"') + '\n[ppo]\nreward_model = "rm"\n')
    assert (d.line, d.path, d.code) == (10, "data.datasets[0].format", "E-CONFLICT")
    d = only(PPO + '\n[ppo]\nreward_model = "rm"\nmax_new_tokens = 1024\n')  # cutoff_len = 1024
    assert (d.line, d.path, d.code) == (30, "ppo.max_new_tokens", "E-CONFLICT")


@pytest.mark.parametrize(
    "key_value", ["kl_coef = -0.1", "clip_range = 0", "gamma = 1.5", "ppo_epochs = 0", "num_generations = 1"]
)
def test_ranges(key_value):
    d = only(PPO + f'\n[ppo]\nreward_model = "rm"\n{key_value}\n')
    assert (d.line, d.path, d.code) == (30, f"ppo.{key_value.split()[0]}", "E-RANGE")


def test_a_local_reward_model_is_anchored_at_the_spec_folder_and_listed_as_an_input(tmp_path):
    from ftc.spec.resolve import input_paths, resolve_paths

    spec = parse_spec(PPO + '\n[ppo]\nreward_model = "runs/rm/model"\n', "job.toml")
    local = {tmp_path / "runs/rm/model"}
    resolved = resolve_paths(spec, tmp_path, is_local=lambda path: path in local)
    assert resolved.ppo.reward_model == str(tmp_path / "runs/rm/model")
    assert ("ppo.reward_model", str(tmp_path / "runs/rm/model"), None) in input_paths(resolved)
    hub = parse_spec(PPO + '\n[ppo]\nreward_model = "owner/reward-model"\n', "job.toml")
    assert resolve_paths(hub, tmp_path, is_local=lambda path: False).ppo.reward_model == "owner/reward-model"
    assert [key for key, _, _ in input_paths(parse_spec(VALID, "job.toml"))] == [
        "model.name_or_path",
        "data.datasets[0].path",
    ]
