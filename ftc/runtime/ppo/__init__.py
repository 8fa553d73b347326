"""PPO's own training loop: rollouts sampled and scored, the arithmetic of its losses, and the learner that steps
the optimizer.
"""
