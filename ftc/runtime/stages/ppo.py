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
(or its adapter). With several processes (strategy ddp) each rank samples and scores its share of
the batch's prompts, and DDP keeps the policy and value head equal on every rank. The rollout is in
`ftc.runtime.ppo.rollout`, the updates and checkpoints in `ftc.runtime.ppo.learner`, the arithmetic in
`ftc.runtime.ppo.arithmetic`.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ftc.compiler.plan import Plan
from ftc.errors import RuntimeUserError
from ftc.runs.folder import RunFolder
from ftc.runtime.data.loading import load_conversations
from ftc.runtime.data.tokenize import use_template
from ftc.runtime.distributed.collectives import any_rank, mean_over_ranks
from ftc.runtime.distributed.process_group import local_rank, rank, world_size
from ftc.runtime.model.loading import load_tokenizer
from ftc.runtime.model.lora import ADAPTER_METHODS
from ftc.runtime.model.lora_inits import INITIAL_ADAPTER
from ftc.runtime.model.trainable import load_trainable
from ftc.runtime.ppo.learner import Learner, resume, save_checkpoint
from ftc.runtime.ppo.rollout import Actors, Rollout, collect, encode_prompts, prompt_batches, stop_token_ids
from ftc.spec.models import Spec


def run(folder: RunFolder) -> None:
    spec, ppo, plan = folder.spec, folder.spec.ppo, folder.plan
    conversations = load_conversations(spec.data, spec.train.seed)  # first: a bad record before the heavy imports
    check_runnable(spec, plan)

    import torch
    from transformers import set_seed

    from ftc.runs.metrics import new_metrics, write_metrics
    from ftc.runtime.distributed.clock import process_started_at
    from ftc.runtime.distributed.preemption import stop_for_restart, stop_on_signals
    from ftc.runtime.outputs import finish

    set_seed(spec.train.seed)
    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, spec.model.template)
    prompts = encode_prompts(tokenizer, conversations, spec.data.cutoff_len - ppo.max_new_tokens)
    steps = total_steps(spec, len(prompts))
    backend = plan.backend.value
    device = torch.device("cpu" if backend == "cpu" else f"{backend}:{local_rank()}")

    actors = load_actors(folder, tokenizer, device)
    learner = Learner(actors.policy, actors.value_head, spec, plan, steps * ppo.ppo_epochs)
    world, me = world_size(), rank()
    if world > 1:  # the same start everywhere (DDP broadcast it); from here each rank samples its own replies
        torch.manual_seed(spec.train.seed + me)
    if me == 0:
        print(describe_run(spec, plan, len(prompts), len(conversations), steps), flush=True)

    metrics = new_metrics("ppo", spec.train.method)
    metrics["startup_s"] = round(time.time() - process_started_at(), 3)
    first = resume(folder, prompts, learner, metrics)
    # Every rank draws the same batches and takes its share: the global batch is the same at any world size.
    batches = prompt_batches(prompts, spec.train.global_batch_size, spec.train.seed, done=first - 1)
    share = spec.train.global_batch_size // world
    board = tensorboard_writer(folder) if me == 0 else None
    started, step, stopping = time.time(), first - 1, False
    with stop_on_signals() as stop:
        for step in range(first, steps + 1):
            rollout = collect(actors, next(batches)[me * share : (me + 1) * share], ppo, plan)
            stats = learner.update(rollout)
            if step == 1 or step % spec.train.logging_steps == 0 or step == steps:
                logs = mean_over_ranks(step_logs(rollout, stats, learner, spec, step, len(prompts)))
                if me == 0:
                    record(metrics, folder, board, step, steps, logs)
            stopping = any_rank(stop.received)  # together, so that every rank joins the checkpoint's collectives
            if stopping or (step % spec.train.save_steps == 0 and step < steps):
                save_checkpoint(learner, tokenizer, folder, step)
            if stopping:
                break
    metrics["train_runtime_s"] = round(time.time() - started, 3)
    if board is not None:
        board.close()
    if stopping:
        if me == 0:
            write_metrics(folder.metrics, metrics)
        stop_for_restart(stop, step, str(folder.checkpoints / f"checkpoint-{step}"))

    if me == 0:
        save_policy(actors.policy, tokenizer, folder)
    finish(folder, metrics)


def load_actors(folder: RunFolder, tokenizer: Any, device: Any) -> Actors:
    """The reward model (first: a wrong path costs no time), the policy as the method trains it, its reference,
    and a value head that starts at 0, so that no advantage comes from a random head."""
    import torch

    from ftc.runtime.model.reference import load_reference_model
    from ftc.runtime.model.rewards import load_reward_model
    from ftc.runtime.plan_check import check_model

    spec, plan = folder.spec, folder.plan
    reward_model, reward_tokenizer = load_reward_model(spec.ppo.reward_model, plan)
    policy = load_trainable(folder)
    check_model(
        policy, plan, spec.train.method, "ppo", pure_bf16=spec.train.pure_bf16
    )  # ppo's loop has no trainer to prepare it: checked as loaded
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


def step_logs(
    rollout: Rollout, stats: dict[str, float], learner: Learner, spec: Spec, step: int, prompts: int
) -> dict[str, float]:
    from ftc.runtime.ppo.arithmetic import masked_mean

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
    from ftc.runs.metrics import add_trainer_log, write_metrics

    add_trainer_log(metrics, step, logs)
    write_metrics(folder.metrics, metrics)
    if board is not None:
        for name, value in logs.items():
            board.add_scalar(f"train/{name}", value, step)
    print(progress_line(step, steps, logs), flush=True)


def check_runnable(spec: Spec, plan: Plan) -> None:
    """What this loop does not do (yet), said before anything loads."""
    if plan.world_size.value > 1 and plan.strategy.value != "ddp":
        raise RuntimeUserError(
            f"train.stage = 'ppo' runs on several devices with ddp (each holds the policy, reference and reward "
            f"model), but the plan chose {plan.strategy.value}",
            "set train.strategy = 'ddp', or use grpo, which trl shards with ZeRO or FSDP",
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


def total_steps(spec: Spec, prompts: int) -> int:
    """train.max_steps, or the steps that pass over the prompts train.epochs times: one step is one rollout batch."""
    if spec.train.max_steps is not None:
        return spec.train.max_steps
    return max(1, math.ceil((spec.train.epochs or 1.0) * prompts / spec.train.global_batch_size))


def describe_run(spec: Spec, plan: Plan, prompts: int, conversations: int, steps: int) -> str:
    ppo = spec.ppo
    return (
        f"data: {prompts} prompts ({conversations - prompts} left out: longer than data.cutoff_len − "
        f"ppo.max_new_tokens), template {spec.model.template}\n"
        f"ppo: {steps} steps of {spec.train.global_batch_size} replies (≤ {ppo.max_new_tokens} tokens, "
        f"temperature {ppo.temperature}), {ppo.ppo_epochs} updates each in micro-batches of "
        f"{plan.micro_batch_size.value}; reward model {ppo.reward_model}"
    )


def progress_line(step: int, steps: int, logs: dict[str, float]) -> str:
    return (
        f"step {step}/{steps} · reward {logs['reward']:.4f} · kl {logs['kl']:.4f} · policy loss "
        f"{logs['policy_loss']:.4f} · value loss {logs['value_loss']:.4f} · clipped {logs['clip_fraction']:.2f} · "
        f"entropy {logs['entropy']:.3f} · {logs['reply_tokens']:.1f} tokens per reply"
    )


def save_policy(policy: Any, tokenizer: Any, folder: RunFolder) -> None:
    """The result: the adapter (on the base as published, for PiSSA/OLoRA) or the whole model, with the tokenizer."""
    initial = folder.path / INITIAL_ADAPTER
    extra = {"path_initial_model_for_weight_conversion": str(initial)} if initial.is_dir() else {}
    policy.save_pretrained(str(folder.trained), **extra)
    tokenizer.save_pretrained(str(folder.trained))
