"""Scoring a trained model: multiple-choice benchmarks through lm-evaluation-harness (`multiple_choice`),
generation on held-out prompts with BLEU and ROUGE (`predict`), and the model they score (`model`)."""
