"""The training runtime: `python -m ftc.runtime RUN_DIR` trains the run a target wrote.

Heavy libraries (torch, transformers, peft, trl, datasets) are imported by the modules that use
them, never here: importing this package must stay cheap.
"""
