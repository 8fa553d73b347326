"""GRPO: group-relative policy optimisation on prompts, through trl's GRPOTrainer.

For each prompt the policy samples ppo.num_generations replies; each reply's reward (the built-in
functions of ppo.reward_functions and/or the reward model of ppo.reward_model, summed) is compared
with its group's mean, and clipped updates raise what beat the group. No value head: the group is
the baseline. trl gets conversational prompts and renders them with our template, as for the
preference stages; prompts are the conversations without their last reply, as for ppo.
"""

from __future__ import annotations

from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import load_conversations
from ftc.runtime.data.tokenize import use_template
from ftc.runtime.model.loading import load_tokenizer
from ftc.runtime.model.rewards import load_reward_model, trl_reward_function
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.ppo.rollout import encode_prompts
from ftc.runtime.training import fit


def run(folder: RunFolder) -> None:
    spec, ppo = folder.spec, folder.spec.ppo
    conversations = load_conversations(spec.data, spec.train.seed)  # first: a bad record before the heavy imports

    from trl import GRPOConfig, GRPOTrainer

    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, spec.model.template)
    prompts = encode_prompts(tokenizer, conversations, spec.data.cutoff_len - ppo.max_new_tokens)
    print(
        f"data: {len(prompts)} prompts ({len(conversations) - len(prompts)} left out: longer than data.cutoff_len − "
        f"ppo.max_new_tokens), template {spec.model.template}; {ppo.num_generations} replies per prompt",
        flush=True,
    )
    rewards: list = [trl_reward_function(name, ppo) for name in ppo.reward_functions]
    reward_tokenizers: list = [None] * len(rewards)  # trl reads None as "not a model"
    if ppo.reward_model is not None:
        reward_model, reward_tokenizer = load_reward_model(ppo.reward_model, folder.plan)
        rewards.append(reward_model)
        reward_tokenizers.append(reward_tokenizer)

    fit(
        folder,
        load_trainable(folder),
        tokenizer,
        [{"prompt": prompt.messages} for prompt in prompts],
        None,  # the rollout stages evaluate nothing held out (the spec refuses data.eval_*)
        trainer_class=GRPOTrainer,
        config_class=GRPOConfig,
        settings={
            "num_generations": ppo.num_generations,
            "max_completion_length": ppo.max_new_tokens,
            "temperature": ppo.temperature,
            # β: with an adapter trl switches it off for the reference; otherwise it loads a frozen copy
            "beta": ppo.kl_coef,
            "epsilon": ppo.clip_range,
            "num_iterations": ppo.ppo_epochs,
        },
        reward_funcs=rewards,
        reward_processing_classes=reward_tokenizers,
    )
