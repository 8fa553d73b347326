"""A valid spec as text, for tests to copy and break one key at a time."""

VALID = """\
[model]
name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"
template = "llama3"

[data]
cutoff_len = 1024

[[data.datasets]]
path = "data/alpaca_en.json"
format = "alpaca"

[train]
stage = "sft"
method = "lora"
global_batch_size = 16
learning_rate = 1e-4
max_steps = 60
seed = 42

[lora]
rank = 8
alpha = 16
target = "all"

[output]
dir = "runs/quickstart"
"""


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the spec"
    return text.replace(old, new, 1)


def as_dpo(text: str) -> str:
    """The spec as a dpo run on preference data."""
    return replace(replace(text, 'stage = "sft"', 'stage = "dpo"'), 'format = "alpaca"', 'format = "preference"')


def refusal(text: str):
    """The first diagnostic the spec is refused with (it must be refused)."""
    from ftc.errors import FtcError
    from ftc.spec import parse_spec

    try:
        parse_spec(text, "job.toml")
    except FtcError as error:
        return error.diagnostics[0]
    raise AssertionError("the spec was accepted")
