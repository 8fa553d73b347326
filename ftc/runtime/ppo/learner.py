"""PPO's optimizer side: AdamW over the trained weights and the value head, the clipped updates over a rollout,
and the checkpoints a run resumes from exactly (weights, optimizer, schedule, loss scaler, every rank's RNG).

With several processes the policy and value head train as one DDP module: each rank updates on its own
rollout, DDP averages the gradients at the last micro-batch of each pass, and every rank's weights stay equal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
from typing import Any

from ftc.compiler.plan import Plan
from ftc.runs.folder import RunFolder
from ftc.runtime.distributed.collectives import barrier, gather_objects
from ftc.runtime.distributed.process_group import rank, world_size
from ftc.runtime.ppo.rollout import Prompt, Rollout, autocast, policy_with_value
from ftc.spec.models import Spec

# In each checkpoint beside the policy: what resuming needs (value head, trained weights, optimizer, schedule,
# RNG), trainer_state.json with the step (ftc.runtime.distributed.resume reads it), then the seal (ftc.runs.seal).
STATE_FILE = "ppo_state.pt"


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
        self.model = policy_with_value(policy, value_head, spec.ppo.temperature)
        if world_size() > 1:  # broadcasts rank 0's weights, then averages gradients over the ranks
            device_ids = [self.device.index] if self.device.type != "cpu" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state(self) -> dict[str, Any]:
        """Everything a resumed run continues from, but the random state: the trained weights (not the frozen
        ones), the value head, the optimizer, schedule and loss scaler. The same on every rank."""
        return {
            "trained": {name: p.detach() for name, p in self.policy.named_parameters() if p.requires_grad},
            "value_head": self.value_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def random_state(self) -> dict[str, Any]:
        """This rank's random state, which its next rollout samples from."""
        import torch

        return {
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
        mine = state["random_states"][rank()]  # resume() refused a run whose world size changed
        torch.set_rng_state(mine["rng"].cpu())
        if mine["cuda_rng"]:
            torch.cuda.set_rng_state_all(mine["cuda_rng"])

    def update(self, rollout: Rollout) -> dict[str, float]:
        """ppo.ppo_epochs optimizer steps over the rollout; the mean of each loss term over them."""
        import torch

        from ftc.runtime.ppo.arithmetic import entropy_from_logits, logprobs_of, masked_mean, ppo_losses

        ppo, batch = self.spec.ppo, len(rollout.reply_ids)
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "entropy": 0.0}
        self.policy.train()
        for _ in range(ppo.ppo_epochs):
            micro_batches = torch.randperm(batch).split(self.plan.micro_batch_size.value)
            for index, rows in enumerate(micro_batches):
                mask = rollout.reply_mask[rows]
                # DDP averages the gradients once per pass, at its last micro-batch
                last = index == len(micro_batches) - 1
                syncing = contextlib.nullcontext() if last or world_size() == 1 else self.model.no_sync()
                with syncing:
                    with autocast(self.plan, rollout.reply_ids.device):
                        logits, values = self.model(rollout, rows)
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


def save_checkpoint(learner: Learner, tokenizer: Any, folder: RunFolder, step: int) -> None:
    """checkpoint-STEP: the policy (adapter or model) and tokenizer as a result is saved, plus STATE_FILE to resume
    from, with every rank's random state; the oldest beyond train.save_total_limit go. Rank 0 writes it under a
    temporary name, flushes and seals it, then renames it; every rank calls this, and returns once it is written."""
    import torch

    from ftc.runs.checkpoints import rotate_checkpoints
    from ftc.runs.seal import fsync_directory, fsync_folder, write_seal

    random_states = gather_objects(learner.random_state())
    if rank() == 0:
        final = folder.checkpoints / f"checkpoint-{step}"
        partial = folder.checkpoints / f"checkpoint-{step}.partial"
        for leftover in folder.checkpoints.glob("checkpoint-*.partial"):  # of a save that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        learner.policy.save_pretrained(str(partial))
        tokenizer.save_pretrained(str(partial))
        torch.save({**learner.state(), "random_states": random_states}, partial / STATE_FILE)
        (partial / "trainer_state.json").write_text(json.dumps({"global_step": step}) + "\n", encoding="utf-8")
        fsync_folder(partial)  # a rename is no seal: after a lost node the renamed files may still be short
        write_seal(partial, step)
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        fsync_directory(folder.checkpoints)  # the rename, on disk
        rotate_checkpoints(folder.checkpoints, step, folder.spec.train.save_total_limit)
    barrier()


def resume(folder: RunFolder, prompts: list[Prompt], learner: Learner, metrics: dict[str, Any]) -> int:
    """The step to start from: 1, or the one after the newest checkpoint, whose state is loaded back.

    As for the trainers' stages (`ftc.runtime.distributed.resume`), a run whose schedule, [ppo] settings or prompts
    changed since it began is refused, and metrics.json's log up to the checkpoint carries over.
    """
    import torch

    from ftc.runs.checkpoints import checkpoint_step
    from ftc.runs.fingerprint import schedule_of
    from ftc.runtime.distributed.resume import matching_checkpoint

    spec = folder.spec
    digest = hashlib.sha256(json.dumps([prompt.input_ids for prompt in prompts]).encode()).hexdigest()
    current = {
        "schedule": {**schedule_of(spec, folder.plan), **{f"ppo.{k}": v for k, v in spec.ppo.model_dump().items()}},
        "data": {"examples": len(prompts), "sha256": digest},
    }
    checkpoint = matching_checkpoint(folder, current)
    if checkpoint is None or not (checkpoint / STATE_FILE).is_file():  # whole, but not ppo's
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
