"""ftc: a declarative job-spec compiler and launcher for fine-tuning language models."""

# A literal, not importlib.metadata: `ftc validate` must start fast and metadata lookup costs ~10 ms.
__version__ = "0.1.0"
