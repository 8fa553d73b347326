"""`ftc quickstart`: a first run made offline from code, and the tiny model, tokenizer and data it (and the
tests) train.
"""
