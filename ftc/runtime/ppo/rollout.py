"""PPO's rollout side: prompts encoded by the chat template, replies sampled from the policy a micro-batch at a
time, scored by the reward model, then per reply token the policy's log-probability and value, the reference's
log-probability, the KL penalty, and the advantages and returns by GAE (`ftc.runtime.ppo.arithmetic`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.runtime.data.loading import Conversation
from ftc.runtime.model.precision import compute_dtype
from ftc.spec.chat_templates import TEMPLATES, Message
from ftc.spec.models import PpoSection


@dataclass(frozen=True)
class Prompt:
    where: str  # the record it came from
    messages: list[Message]  # the conversation without its last reply
    input_ids: list[int]  # as the template renders it, ending with the assistant's header


@dataclass
class Rollout:
    """One batch of sampled replies and what PPO learns from: [batch, reply tokens] tensors, scores [batch]."""

    prompt_ids: Any  # left-padded
    prompt_mask: Any
    reply_ids: Any  # right-padded
    reply_mask: Any  # 1 on the reply's tokens (its end marker included), 0 after
    scores: Any
    logprobs: Any = None
    values: Any = None
    kl: Any = None
    advantages: Any = None
    returns: Any = None


@dataclass(frozen=True)
class Actors:
    """The models a rollout goes through, and how a reply ends."""

    policy: Any
    reference: Any  # None with an adapter: the policy with its adapter switched off is the reference
    value_head: Any
    reward_model: Any
    reward_tokenizer: Any
    tokenizer: Any
    stops: list[int]  # token ids that end a reply
    device: Any


def prompt_of(conversation: Conversation) -> list[Message]:
    """The conversation up to its last assistant reply (all of it when it has none): what the policy answers."""
    replies = [index for index, message in enumerate(conversation.messages) if message["role"] == "assistant"]
    return conversation.messages[: replies[-1]] if replies else conversation.messages


def encode_prompts(tokenizer: Any, conversations: list[Conversation], room: int) -> list[Prompt]:
    """Each prompt rendered by the chat template with the assistant's header; one longer than `room` is left out."""
    from jinja2 import TemplateError

    prompts = []
    for conversation in conversations:
        messages = prompt_of(conversation)
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError as error:
            raise RuntimeUserError(
                f"{conversation.where}: the chat template refused the prompt: {error}", "fix the record"
            ) from None
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= room:
            prompts.append(Prompt(conversation.where, messages, ids))
    if not prompts:
        raise RuntimeUserError(
            f"no prompt fits in data.cutoff_len − ppo.max_new_tokens = {room} tokens",
            "raise data.cutoff_len or lower ppo.max_new_tokens",
        )
    return prompts


def prompt_batches(prompts: list[Prompt], size: int, seed: int, done: int = 0) -> Iterator[list[Prompt]]:
    """Batches of `size` prompts, in a new seeded order on every pass over them; the first `done` are skipped."""
    order = random.Random(seed)
    queue: list[Prompt] = []
    for batch in count():
        while len(queue) < size:
            queue += order.sample(prompts, len(prompts))
        if batch >= done:
            yield queue[:size]
        queue = queue[size:]


def autocast(plan: Plan, device: Any) -> Any:
    """Compute in the plan's precision, over fp32 master weights (full) or a half-precision base (load_model's)."""
    import torch

    return torch.autocast(device_type=device.type, dtype=compute_dtype(plan), enabled=plan.precision.value != "fp32")


def left_padded(rows: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """(ids, attention mask) with the padding on the left, so every prompt ends where its reply begins."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return ids, mask


def stop_token_ids(tokenizer: Any, template: str) -> list[int]:
    """Where a reply ends: the tokenizer's end token, and the template's end marker where it is one token."""
    from ftc.runtime.data.tokenize import untokenized_end_marker

    stops = [tokenizer.eos_token_id]
    if template in TEMPLATES and untokenized_end_marker(tokenizer, template) is None:
        stops.append(tokenizer.convert_tokens_to_ids(TEMPLATES[template].assistant_end.strip()))
    return sorted(set(stops))


def collect(actors: Actors, batch: list[Prompt], ppo: PpoSection, plan: Plan) -> Rollout:
    """Sample and score a reply per prompt; then per reply token its log-probability, the reference's, the value,
    the KL penalty and reward, and the advantage and return by GAE."""
    import torch

    from ftc.runtime.ppo import arithmetic as ppo_math

    rollout = sample(actors, batch, ppo.max_new_tokens, ppo.temperature, plan)
    rollout.scores = score(actors, batch, rollout)
    with torch.no_grad():
        rollout.logprobs, rollout.values = evaluate(actors.policy, actors.value_head, rollout, ppo.temperature, plan)
        reference_logprobs = reference_pass(actors.policy, actors.reference, rollout, ppo.temperature, plan)
    rollout.kl = ppo_math.kl_k3(rollout.logprobs, reference_logprobs) * rollout.reply_mask
    rewards = ppo_math.token_rewards(rollout.scores, rollout.kl, rollout.reply_mask, ppo.kl_coef)
    advantages, rollout.returns = ppo_math.gae(rewards, rollout.values, rollout.reply_mask, ppo.gamma, ppo.lam)
    rollout.advantages = ppo_math.masked_whiten(advantages, rollout.reply_mask)
    return rollout


def sample(actors: Actors, batch: list[Prompt], max_new_tokens: int, temperature: float, plan: Plan) -> Rollout:
    """A reply sampled from the policy for each prompt, a micro-batch at a time; what follows its end is masked."""
    import torch

    policy, tokenizer, stops, device = actors.policy, actors.tokenizer, actors.stops, actors.device
    micro = plan.micro_batch_size.value
    replies: list[list[int]] = []
    policy.eval()
    for start in range(0, len(batch), micro):
        rows = [prompt.input_ids for prompt in batch[start : start + micro]]
        ids, mask = left_padded(rows, tokenizer.pad_token_id, device)
        with torch.no_grad(), autocast(plan, device):
            generated = policy.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=temperature,
                top_k=0,  # sample from the policy's own distribution, whose log-probabilities PPO uses
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
            )
        replies += generated[:, ids.shape[1] :].tolist()
    prompt_ids, prompt_mask = left_padded([prompt.input_ids for prompt in batch], tokenizer.pad_token_id, device)
    width = max(len(reply) for reply in replies)
    reply_ids = torch.tensor(
        [reply + [tokenizer.pad_token_id] * (width - len(reply)) for reply in replies], device=device
    )
    ended = torch.isin(reply_ids, torch.tensor(stops, device=device))
    after_end = (ended.cumsum(dim=1) - ended.long()) > 0  # the end marker itself is part of the reply
    reply_mask = (~after_end).float()
    return Rollout(prompt_ids, prompt_mask, reply_ids, reply_mask, scores=None)


def score(actors: Actors, batch: list[Prompt], rollout: Rollout) -> Any:
    """The reward model's score of each reply, read as text and rendered by the reward model's own template."""
    from ftc.runtime.model.rewards import score_replies

    texts = [
        actors.tokenizer.decode(ids[mask.bool()], skip_special_tokens=True)
        for ids, mask in zip(rollout.reply_ids, rollout.reply_mask, strict=True)
    ]
    return score_replies(actors.reward_model, actors.reward_tokenizer, [prompt.messages for prompt in batch], texts)


def forward(model: Any, rollout: Rollout, rows: Any, temperature: float) -> tuple[Any, Any]:
    """(logits over each reply token, scaled by the temperature; the last hidden state before each)."""
    import torch

    reply_tokens = rollout.reply_ids.shape[1]
    ids = torch.cat([rollout.prompt_ids[rows], rollout.reply_ids[rows]], dim=1)
    mask = torch.cat([rollout.prompt_mask[rows], torch.ones_like(rollout.reply_ids[rows])], dim=1)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # left padding: each prompt starts at position 0
    output = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        output_hidden_states=True,
        logits_to_keep=reply_tokens + 1,
    )
    # the position before each reply token predicts it
    logits = output.logits[:, :-1].float() / temperature
    return logits, output.hidden_states[-1][:, -reply_tokens - 1 : -1]


def policy_with_value(policy: Any, value_head: Any, temperature: float) -> Any:
    """The policy and its value head as one module, whose forward gives (logits of the reply tokens, values):
    what the learner trains, so that DDP can average both's gradients in one pass."""
    import torch

    class PolicyWithValue(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy, self.value_head = policy, value_head

        def forward(self, rollout: Rollout, rows: Any) -> tuple[Any, Any]:
            logits, hidden = forward(self.policy, rollout, rows, temperature)
            return logits, self.value_head(hidden).squeeze(-1).float()

    return PolicyWithValue()


def evaluate(policy: Any, value_head: Any, rollout: Rollout, temperature: float, plan: Plan) -> tuple[Any, Any]:
    """(log-probabilities, values) of the reply tokens under the policy as it sampled them, a micro-batch at a time."""
    import torch

    from ftc.runtime.ppo.arithmetic import logprobs_of

    parts = []
    for rows in torch.arange(len(rollout.reply_ids)).split(plan.micro_batch_size.value):
        with autocast(plan, rollout.reply_ids.device):
            logits, hidden = forward(policy, rollout, rows, temperature)
            values = value_head(hidden).squeeze(-1).float()
        parts.append((logprobs_of(logits, rollout.reply_ids[rows]), values))
    return tuple(torch.cat(part) for part in zip(*parts, strict=True))


def reference_pass(policy: Any, reference: Any, rollout: Rollout, temperature: float, plan: Plan) -> Any:
    """The reply tokens' log-probabilities under the starting model: a frozen copy, or the policy minus its adapter."""
    import torch

    from ftc.runtime.ppo.arithmetic import logprobs_of

    parts = []
    for rows in torch.arange(len(rollout.reply_ids)).split(plan.micro_batch_size.value):
        with autocast(plan, rollout.reply_ids.device):
            if reference is None:
                with policy.disable_adapter():
                    logits, _ = forward(policy, rollout, rows, temperature)
            else:
                logits, _ = forward(reference, rollout, rows, temperature)
        parts.append(logprobs_of(logits, rollout.reply_ids[rows]))
    return torch.cat(parts)
