"""Rewards: the built-in functions by hand, in trl's calling shape, and a reward model read from an rm run."""

from __future__ import annotations

import typing

import pytest

from ftc.runtime.model.rewards import REWARD_FUNCTIONS, reply_text, trl_reward_function
from ftc.spec.models import PpoSection, RewardFunction


def settings(**keys) -> PpoSection:
    return PpoSection.model_validate(keys)


def test_the_spec_names_exactly_the_registered_functions():
    assert set(typing.get_args(RewardFunction)) == set(REWARD_FUNCTIONS)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("one two three four", 1.0), ("one two", 0.5), ("", 0.0), ("a b c d e f", 0.5), ("a " * 9, 0.0)],
)
def test_length_scores_one_at_the_target_and_falls_linearly(reply, expected):
    assert REWARD_FUNCTIONS["length"].score(reply, settings(target_words=4)) == pytest.approx(expected)


def test_format_matches_the_whole_reply():
    answer = settings(reply_pattern=r"The \w+ is \w+\.")
    assert REWARD_FUNCTIONS["format"].score("The sky is blue.", answer) == 1.0
    assert REWARD_FUNCTIONS["format"].score("  The sky is blue.\n", answer) == 1.0  # surrounding space is no format
    assert REWARD_FUNCTIONS["format"].score("The sky is blue. And more", answer) == 0.0
    assert REWARD_FUNCTIONS["format"].score("I do not know.", answer) == 0.0


def test_distinct_is_the_share_of_distinct_words():
    assert REWARD_FUNCTIONS["distinct"].score("apple apple apple river", settings()) == 0.5
    assert REWARD_FUNCTIONS["distinct"].score("apple river", settings()) == 1.0
    assert REWARD_FUNCTIONS["distinct"].score("   ", settings()) == 0.0


def test_trl_shape_takes_text_or_conversational_completions():
    reward = trl_reward_function("length", settings(target_words=2))
    assert reward.__name__ == "length"  # trl logs rewards/length/mean
    completions = ["a b", [{"role": "assistant", "content": "a b c d"}]]
    assert reward(prompts=["p", "p"], completions=completions, completion_ids=[[1], [2]], trainer_state=None) == [1, 0]
    assert reply_text([{"role": "assistant", "content": "x"}]) == "x"


def test_a_reward_model_is_held_as_the_plan_holds_the_policy(tmp_path):
    """The same loader as the rm stage's: the plan's compute dtype and attention kernel, frozen."""
    from dataclasses import replace

    import torch

    from ftc.compiler.plan import Decision
    from ftc.quickstart.tiny import build_tiny_reward_model
    from ftc.runtime.model.rewards import load_reward_model
    from tests.tiny_runs import cpu_plan

    plan = replace(cpu_plan("bf16"), attention=Decision("eager", "fixed by the test"))
    model, tokenizer = load_reward_model(str(build_tiny_reward_model(tmp_path / "reward")), plan)
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == "eager"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert not any(parameter.requires_grad for parameter in model.parameters())


@pytest.mark.slow
def test_a_reward_model_from_an_rm_runs_adapter_scores_as_peft_loads_it(tmp_path, tiny_model_dir, train_stage):
    """The rm stage's LoRA output (adapter + score head on the base) is merged on load and scores as peft would."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from ftc.quickstart.tiny import write_tiny_preferences
    from ftc.runtime.model.rewards import load_reward_model, score_replies
    from tests.tiny_runs import cpu_plan

    pairs = write_tiny_preferences(tmp_path / "pairs.json", n=16)
    train_stage(tmp_path / "rm", pairs, "preference", stage="rm", method="lora", max_steps=2)
    adapter = tmp_path / "rm" / "adapter"

    model, tokenizer = load_reward_model(str(adapter), cpu_plan())
    prompts = [[{"role": "user", "content": "Add the two numbers.\n\n2 + 3"}]] * 2
    scores = score_replies(model, tokenizer, prompts, ["5", "I do not know."])

    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    expected_model = PeftModel.from_pretrained(base, adapter).eval()
    expected_model.config.pad_token_id = tokenizer.pad_token_id
    for prompt, reply, got in zip(prompts, ["5", "I do not know."], scores, strict=True):
        ids = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": reply}], return_dict=True,
                                            return_tensors="pt")["input_ids"]  # fmt: skip
        with torch.no_grad():
            assert got.item() == pytest.approx(expected_model(input_ids=ids).logits[0, 0].item(), abs=1e-4)
    assert not any(parameter.requires_grad for parameter in model.parameters())
