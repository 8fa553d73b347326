"""PPO: the policy samples replies to prompts, a reward model scores them, and clipped updates raise the
likelihood of what scored well while a KL penalty keeps the policy near its start.

Our own loop on torch + transformers (trl 1.16 has no PPO trainer). One step:
  1. rollout: train.global_batch_size prompts; the policy samples a reply to each (ppo.temperature,
     at most ppo.max_new_tokens); the reward model scores prompt + reply;
  2. per reply token: the policy's log-probability, the frozen reference's (LoRA: the adapter
     switched off; otherwise a frozen copy) and the value head's estimate; the reward is
     −kl_coef · KL on every token plus the score on the last; GAE (gamma, lam) gives advantages;
  3. ppo.ppo_epochs optimizer updates over the batch (micro-batches of the plan, gradients
     accumulated), each minimising the clipped policy loss + value_loss_coef · the clipped value loss.
The value head is one linear layer on the policy's last hidden state; it trains beside the policy
(or its adapter). The arithmetic is in `ftc.runtime.ppo_math`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

from ftc.chat_templates import TEMPLATES, Message
from ftc.compiler.plan import Plan
from ftc.runtime.data import Conversation, load_conversations
from ftc.runtime.errors import RuntimeUserError
from ftc.runtime.model import ADAPTER_METHODS, INITIAL_ADAPTER, load_model, load_tokenizer, prepare_trainable
from ftc.runtime.run_folder import RunFolder
from ftc.runtime.tokenize import use_template
from ftc.spec.models import PpoSection, Spec

# In each checkpoint beside the policy: what resuming needs (value head, trained weights, optimizer, schedule,
# RNG), then trainer_state.json with the step, written last as the trainers do (ftc.runtime.resume reads it).
STATE_FILE = "ppo_state.pt"


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


def run(folder: RunFolder) -> None:
    spec, ppo, plan = folder.spec, folder.spec.ppo, folder.plan
    conversations = load_conversations(spec.data, spec.train.seed)  # first: a bad record before the heavy imports
    check_runnable(spec, plan)

    import torch
    from transformers import set_seed

    from ftc.runtime.clock import process_started_at
    from ftc.runtime.metrics import new_metrics, write_metrics
    from ftc.runtime.outputs import finish
    from ftc.runtime.preemption import stop_for_restart, stop_on_signals

    set_seed(spec.train.seed)
    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, spec.model.template)
    prompts = encode_prompts(tokenizer, conversations, spec.data.cutoff_len - ppo.max_new_tokens)
    steps = total_steps(spec, len(prompts))
    device = torch.device(plan.backend.value if plan.backend.value == "cpu" else f"{plan.backend.value}:0")

    actors = load_actors(folder, tokenizer, device)
    learner = Learner(actors.policy, actors.value_head, spec, plan, steps * ppo.ppo_epochs)
    print(describe_run(spec, plan, len(prompts), len(conversations), steps), flush=True)

    metrics = new_metrics("ppo", spec.train.method)
    metrics["startup_s"] = round(time.time() - process_started_at(), 3)
    first = resume(folder, prompts, learner, metrics)
    batches = prompt_batches(prompts, spec.train.global_batch_size, spec.train.seed, done=first - 1)
    board = tensorboard_writer(folder)
    started, step = time.time(), first - 1
    with stop_on_signals() as stop:
        for step in range(first, steps + 1):
            rollout = collect(actors, next(batches), ppo, plan)
            stats = learner.update(rollout)
            if step == 1 or step % spec.train.logging_steps == 0 or step == steps:
                logs = step_logs(rollout, stats, learner, spec, step, len(prompts))
                record(metrics, folder, board, step, steps, logs)
            if stop.received or (step % spec.train.save_steps == 0 and step < steps):
                save_checkpoint(learner, tokenizer, folder, step)
            if stop.received:
                break
    metrics["train_runtime_s"] = round(time.time() - started, 3)
    if board is not None:
        board.close()
    if stop.received:
        write_metrics(folder.metrics, metrics)
        stop_for_restart(stop, step, str(folder.checkpoints / f"checkpoint-{step}"))

    save_policy(actors.policy, tokenizer, folder)
    finish(folder, metrics)


def load_actors(folder: RunFolder, tokenizer: Any, device: Any) -> Actors:
    """The reward model (first: a wrong path costs no time), the policy as the method trains it, its reference,
    and a value head that starts at 0, so that no advantage comes from a random head."""
    import torch

    from ftc.runtime.preference_models import load_reference_model
    from ftc.runtime.rewards import load_reward_model

    spec, plan = folder.spec, folder.plan
    reward_model, reward_tokenizer = load_reward_model(spec.ppo.reward_model, plan)
    policy = prepare_trainable(load_model(spec.model, plan, spec.train.method), spec, plan, folder.path)
    if spec.train.method != "qlora":  # bitsandbytes layers were loaded where they run, and cannot move
        policy.to(device)
    for module in policy.modules():  # a sampled reply's log-probability must not change with dropout's draw
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if plan.gradient_checkpointing.value:
        policy.gradient_checkpointing_enable()
    value_head = torch.nn.Linear(policy.config.get_text_config().hidden_size, 1).to(device)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    return Actors(
        policy=policy,
        reference=None if spec.train.method in ADAPTER_METHODS else load_reference_model(spec.model, plan).to(device),
        value_head=value_head,
        reward_model=reward_model.to(device),
        reward_tokenizer=reward_tokenizer,
        tokenizer=tokenizer,
        stops=stop_token_ids(tokenizer, spec.model.template),
        device=device,
    )


def collect(actors: Actors, batch: list[Prompt], ppo: PpoSection, plan: Plan) -> Rollout:
    """Sample and score a reply per prompt; then per reply token its log-probability, the reference's, the value,
    the KL penalty and reward, and the advantage and return by GAE."""
    import torch

    from ftc.runtime import ppo_math

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


def step_logs(
    rollout: Rollout, stats: dict[str, float], learner: Learner, spec: Spec, step: int, prompts: int
) -> dict[str, float]:
    from ftc.runtime.ppo_math import masked_mean

    return {
        "loss": stats["policy_loss"] + spec.ppo.value_loss_coef * stats["value_loss"],
        "learning_rate": learner.learning_rate(),
        "epoch": step * spec.train.global_batch_size / prompts,
        "reward": rollout.scores.mean().item(),
        "kl": masked_mean(rollout.kl, rollout.reply_mask).item(),  # per token, as trl's grpo logs it
        "reply_tokens": rollout.reply_mask.sum(dim=1).mean().item(),
        **stats,
    }


def record(metrics: dict, folder: RunFolder, board: Any, step: int, steps: int, logs: dict[str, float]) -> None:
    """Into metrics.json (as the trainers' stages do), tensorboard when asked, and one line on the terminal."""
    from ftc.runtime.metrics import add_trainer_log, write_metrics

    add_trainer_log(metrics, step, logs)
    write_metrics(folder.metrics, metrics)
    if board is not None:
        for name, value in logs.items():
            board.add_scalar(f"train/{name}", value, step)
    print(progress_line(step, steps, logs), flush=True)


def check_runnable(spec: Spec, plan: Plan) -> None:
    """What this loop does not do (yet), said before anything loads."""
    if plan.world_size.value > 1:
        raise RuntimeUserError(
            f"train.stage = 'ppo' runs in one process, but the plan uses {plan.world_size.value} devices",
            "plan for one device (ftc launch --hardware with a single device), or use grpo, which trl distributes",
        )
    if spec.train.optimizer != "adamw":
        raise RuntimeUserError(
            f"train.stage = 'ppo' trains with torch's AdamW, not train.optimizer = {spec.train.optimizer!r}",
            "set train.optimizer = 'adamw'",
        )
    if spec.lora.plus_lr_ratio is not None and spec.train.method in ADAPTER_METHODS:
        raise RuntimeUserError("lora.plus_lr_ratio is not read by train.stage = 'ppo'", "remove it")
    others = [name for name in spec.monitor.report_to if name != "tensorboard"]
    if others:
        raise RuntimeUserError(
            f"train.stage = 'ppo' logs to metrics.json and tensorboard only, not monitor.report_to = {others}",
            "remove them from monitor.report_to",
        )


def tensorboard_writer(folder: RunFolder) -> Any:
    """A writer into the run folder's tensorboard/ when [monitor] asks for it (the default), else None."""
    if "tensorboard" not in folder.spec.monitor.report_to:
        return None
    from ftc.runtime.trainer_args import monitor_arguments

    monitor_arguments(folder)  # first: says so when tensorboard is not installed
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder.path / "tensorboard"))


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


def total_steps(spec: Spec, prompts: int) -> int:
    """train.max_steps, or the steps that pass over the prompts train.epochs times: one step is one rollout batch."""
    if spec.train.max_steps is not None:
        return spec.train.max_steps
    return max(1, math.ceil((spec.train.epochs or 1.0) * prompts / spec.train.global_batch_size))


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


def describe_run(spec: Spec, plan: Plan, prompts: int, conversations: int, steps: int) -> str:
    ppo = spec.ppo
    return (
        f"data: {prompts} prompts ({conversations - prompts} left out: longer than data.cutoff_len − "
        f"ppo.max_new_tokens), template {spec.model.template}\n"
        f"ppo: {steps} steps of {spec.train.global_batch_size} replies (≤ {ppo.max_new_tokens} tokens, "
        f"temperature {ppo.temperature}), {ppo.ppo_epochs} updates each in micro-batches of "
        f"{plan.micro_batch_size.value}; reward model {ppo.reward_model}"
    )


def autocast(plan: Plan, device: Any) -> Any:
    """Compute in the plan's precision, over fp32 master weights (full) or a half-precision base (load_model's)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[plan.precision.value]
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=plan.precision.value != "fp32")


def left_padded(rows: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """(ids, attention mask) with the padding on the left, so every prompt ends where its reply begins."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return ids, mask


def stop_token_ids(tokenizer: Any, template: str) -> list[int]:
    """Where a reply ends: the tokenizer's end token, and the template's end marker where it is one token."""
    from ftc.runtime.tokenize import untokenized_end_marker

    stops = [tokenizer.eos_token_id]
    if template in TEMPLATES and untokenized_end_marker(tokenizer, template) is None:
        stops.append(tokenizer.convert_tokens_to_ids(TEMPLATES[template].assistant_end.strip()))
    return sorted(set(stops))


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
    from ftc.runtime.rewards import score_replies

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


def evaluate(policy: Any, value_head: Any, rollout: Rollout, temperature: float, plan: Plan) -> tuple[Any, Any]:
    """(log-probabilities, values) of the reply tokens under the policy as it sampled them, a micro-batch at a time."""
    import torch

    from ftc.runtime.ppo_math import logprobs_of

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

    from ftc.runtime.ppo_math import logprobs_of

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


class Learner:
    """The optimizer side: AdamW over the trained weights and the value head, the schedule, the loss scaler (fp16)."""

    def __init__(self, policy: Any, value_head: Any, spec: Spec, plan: Plan, updates: int) -> None:
        import torch
        from transformers import get_scheduler

        from ftc.runtime.trainer_args import warmup_fraction

        self.policy, self.value_head, self.spec, self.plan = policy, value_head, spec, plan
        self.parameters = [p for p in policy.parameters() if p.requires_grad] + list(value_head.parameters())
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=spec.train.learning_rate, weight_decay=spec.train.weight_decay
        )
        warmup = warmup_fraction(spec.train.warmup_ratio)
        self.scheduler = get_scheduler(
            spec.train.lr_scheduler, self.optimizer, num_warmup_steps=math.ceil(warmup * updates),
            num_training_steps=updates,
        )  # fmt: skip
        self.device = next(value_head.parameters()).device
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=plan.precision.value == "fp16")

    def learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state(self) -> dict[str, Any]:
        """Everything a resumed run continues from: the trained weights (not the frozen ones), the value head,
        the optimizer, schedule and loss scaler, and the random state the next rollout samples from."""
        import torch

        return {
            "trained": {name: p.detach() for name, p in self.policy.named_parameters() if p.requires_grad},
            "value_head": self.value_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def restore(self, state: dict[str, Any]) -> None:
        import torch

        parameters = dict(self.policy.named_parameters())
        with torch.no_grad():
            for name, saved in state["trained"].items():
                parameters[name].copy_(saved)
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def update(self, rollout: Rollout) -> dict[str, float]:
        """ppo.ppo_epochs optimizer steps over the rollout; the mean of each loss term over them."""
        import torch

        from ftc.runtime.ppo_math import entropy_from_logits, logprobs_of, masked_mean, ppo_losses

        ppo, batch = self.spec.ppo, len(rollout.reply_ids)
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "entropy": 0.0}
        self.policy.train()
        for _ in range(ppo.ppo_epochs):
            for rows in torch.randperm(batch).split(self.plan.micro_batch_size.value):
                mask = rollout.reply_mask[rows]
                with autocast(self.plan, rollout.reply_ids.device):
                    logits, hidden = forward(self.policy, rollout, rows, ppo.temperature)
                    values = self.value_head(hidden).squeeze(-1).float()
                losses = ppo_losses(
                    logprobs_of(logits, rollout.reply_ids[rows]), values, rollout.logprobs[rows],
                    rollout.values[rows], rollout.advantages[rows], rollout.returns[rows], mask, ppo.clip_range,
                    ppo.clip_range_value,
                )  # fmt: skip
                share = len(rows) / batch  # micro-batches add up to the batch's mean
                self.scaler.scale((losses.policy + ppo.value_loss_coef * losses.value) * share).backward()
                entropy = masked_mean(entropy_from_logits(logits.detach()), mask)
                terms = (losses.policy, losses.value, losses.clip_fraction, entropy)
                for name, term in zip(totals, terms, strict=True):
                    totals[name] += term.item() * share / ppo.ppo_epochs
            self.step()
        self.policy.eval()
        return totals

    def step(self) -> None:
        import torch

        self.scaler.unscale_(self.optimizer)
        if self.spec.train.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.spec.train.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


def progress_line(step: int, steps: int, logs: dict[str, float]) -> str:
    return (
        f"step {step}/{steps} · reward {logs['reward']:.4f} · kl {logs['kl']:.4f} · policy loss "
        f"{logs['policy_loss']:.4f} · value loss {logs['value_loss']:.4f} · clipped {logs['clip_fraction']:.2f} · "
        f"entropy {logs['entropy']:.3f} · {logs['reply_tokens']:.1f} tokens per reply"
    )


def save_checkpoint(learner: Learner, tokenizer: Any, folder: RunFolder, step: int) -> None:
    """checkpoint-STEP: the policy (adapter or model) and tokenizer as a result is saved, plus STATE_FILE to resume
    from; the oldest beyond train.save_total_limit go. Written under a temporary name, then renamed."""
    import torch

    final = folder.checkpoints / f"checkpoint-{step}"
    partial = folder.checkpoints / f"checkpoint-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    learner.policy.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    torch.save(learner.state(), partial / STATE_FILE)
    (partial / "trainer_state.json").write_text(json.dumps({"global_step": step}) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    limit = folder.spec.train.save_total_limit
    kept = sorted(
        (path for path in folder.checkpoints.iterdir() if path.name.split("-")[-1].isdigit()),
        key=lambda path: int(path.name.split("-")[-1]),
    )
    for old in kept[:-limit] if limit else []:
        shutil.rmtree(old)


def resume(folder: RunFolder, prompts: list[Prompt], learner: Learner, metrics: dict[str, Any]) -> int:
    """The step to start from: 1, or the one after the newest checkpoint, whose state is loaded back.

    As for the trainers' stages (`ftc.runtime.resume`), a run whose schedule, [ppo] settings or prompts
    changed since it began is refused, and metrics.json's log up to the checkpoint carries over.
    """
    import torch

    from ftc.runtime.resume import checkpoint_step, matching_checkpoint, schedule_of

    spec = folder.spec
    digest = hashlib.sha256(json.dumps([prompt.input_ids for prompt in prompts]).encode()).hexdigest()
    current = {
        "schedule": {**schedule_of(spec, folder.plan), **{f"ppo.{k}": v for k, v in spec.ppo.model_dump().items()}},
        "data": {"examples": len(prompts), "sha256": digest},
    }
    checkpoint = matching_checkpoint(folder, current, usable=lambda found: (found / STATE_FILE).is_file())
    if checkpoint is None:
        return 1
    step = checkpoint_step(checkpoint)
    # onto the CPU: the random states must be there, and the optimizer moves its own state to its parameters
    learner.restore(torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True))
    if folder.metrics.is_file():
        earlier = json.loads(folder.metrics.read_text(encoding="utf-8"))
        metrics["log"] = [entry for entry in earlier.get("log", []) if entry["step"] <= step]
        metrics["resumed_at_steps"] = [*earlier.get("resumed_at_steps", []), step]
    print(f"resuming from {checkpoint.name} (step {step}): policy, value head, optimizer, schedule, RNG", flush=True)
    return step + 1


def save_policy(policy: Any, tokenizer: Any, folder: RunFolder) -> None:
    """The result: the adapter (on the base as published, for PiSSA/OLoRA) or the whole model, with the tokenizer."""
    initial = folder.path / INITIAL_ADAPTER
    extra = {"path_initial_model_for_weight_conversion": str(initial)} if initial.is_dir() else {}
    policy.save_pretrained(str(folder.trained), **extra)
    tokenizer.save_pretrained(str(folder.trained))
