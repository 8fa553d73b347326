"""The per-device memory estimate, term by term: weights and training states, activations, logits, and sampling
for the rollout stages.
"""
