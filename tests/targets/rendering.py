"""Jobs for the target tests, built from the shared valid spec, and stand-ins for the commands scripts call."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import tomli_w

from ftc.compiler import compile_plan, parse_hardware
from ftc.models.lookup import architecture_for
from ftc.spec import parse_spec
from ftc.targets.base import Job
from tests.specs import VALID

# Names and paths a user might have, or an attacker might choose: each must reach its command as one word.
HOSTILE_NAMES = [
    "with space",
    "quote'single",
    'quote"double',
    "$(touch pwned)",
    "`touch pwned`",
    "new\nline",
    "-leading-dash",
    "ünïcødé 名前",
    "semi;colon&amp|pipe",
    "percent %j %x",
    "comma,colon:equals=",
    "back\\slash * ? [glob] ~",
    "${HOME}$HOME",
]


def make_job(folder: Path, run_name: str = "run", hardware: str = "cpu", python: str = sys.executable,
             local_name: str | None = None, nodes: int = 1, **sections: dict) -> Job:  # fmt: skip
    """The valid spec with its run folder (and, with `local_name`, its model and data) under `folder`."""
    raw = tomllib.loads(VALID)
    raw["output"]["dir"] = str(folder / run_name)
    if local_name is not None:
        raw["model"]["name_or_path"] = str(folder / local_name / "model")
        raw["data"]["datasets"][0]["path"] = str(folder / local_name / "data.json")
    raw.update(sections)
    spec = parse_spec(tomli_w.dumps(raw), "job.toml")
    plan = compile_plan(spec, parse_hardware(hardware, nodes), architecture_for(spec, folder))
    return Job(spec_path=folder / "job.toml", spec=spec, plan=plan, run_dir=Path(spec.output.dir), python=python)


def torchrun_options(words: list) -> dict[str, object]:
    """--option value pairs of a torchrun line, up to --module."""
    start = words.index("torch.distributed.run") + 1
    options, index = {}, start
    while words[index] != "--module":
        word = words[index]
        if "=" in word:
            key, value = word.split("=", 1)
            options[key] = value
            index += 1
        else:
            options[word] = words[index + 1]
            index += 2
    return options


def write_recorders(bin_dir: Path, log: Path, names: tuple[str, ...]) -> None:
    """Executables that append their argv (and whether stdin had data) as one JSON line to `log`.

    `srun` also runs the command it was given (after its own --options), as Slurm would.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        body = f"""#!{sys.executable}
import json, os, subprocess, sys
argv = sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open({str(log)!r}, "a", encoding="utf-8") as handle:
    handle.write(json.dumps({{"command": {name!r}, "argv": argv, "stdin": stdin}}) + "\\n")
if {name!r} == "srun":
    first = next((i for i, arg in enumerate(argv) if not arg.startswith("--")), len(argv))
    sys.exit(subprocess.run(argv[first:]).returncode)
if {name!r} == "scontrol":
    print("node-1")
"""
        path = bin_dir / name
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)


def recorded(log: Path) -> list[dict]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
