"""The `ftc` command as users run it: whole processes, exit codes, and what they print."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import ftc
from tests.specs import VALID, replace

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(VALID)
    return path


def test_validate_accepts_a_valid_spec(spec_file):
    result = ftc("validate", str(spec_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 1 spec file valid" in result.stderr


def test_three_mistakes_give_three_located_messages_and_no_traceback(tmp_path):
    text = replace(VALID, "rank = 8", "rnak = 8")
    text = replace(text, "global_batch_size = 16", 'global_batch_size = "16"')
    text = replace(text, 'format = "alpaca"', 'format = "alpacca"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = ftc("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}:10: data.datasets[0].format: [E-ENUM] ")
    assert lines[1].startswith(f"{path}:15: train.global_batch_size: [E-TYPE] ")
    assert lines[2].startswith(f"{path}:21: lora.rnak: [E-UNKNOWN-KEY] ")
    assert all("(hint: " in line for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_reports_every_file_and_json_for_ci(tmp_path, spec_file):
    (tmp_path / "broken.toml").write_text("[model\n")
    result = ftc("validate", str(tmp_path / "*.toml"), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["files"], report["valid"]) == (2, 1)
    [diagnostic] = report["diagnostics"]
    assert (diagnostic["line"], diagnostic["column"], diagnostic["code"]) == (1, 7, "E-TOML-SYNTAX")


def test_validate_json_carries_each_problems_code_beside_its_text(tmp_path):
    text = replace(replace(VALID, "rank = 8", "rnak = 8"), "seed = 42", 'seed = "42"')
    (tmp_path / "bad.toml").write_text(text)
    printed = ftc("validate", str(tmp_path / "bad.toml")).stdout.splitlines()
    result = ftc("validate", str(tmp_path / "bad.toml"), "--format", "json")
    assert result.returncode == 1
    diagnostics = json.loads(result.stdout)["diagnostics"]
    assert [(d["line"], d["path"], d["code"]) for d in diagnostics] == [
        (18, "train.seed", "E-TYPE"),
        (21, "lora.rnak", "E-UNKNOWN-KEY"),
    ]
    for diagnostic, line in zip(diagnostics, printed, strict=True):
        assert list(diagnostic) == ["file", "line", "column", "path", "code", "message", "hint"]
        where = f"{diagnostic['file']}:{diagnostic['line']}: {diagnostic['path']}:"
        assert line == f"{where} [{diagnostic['code']}] {diagnostic['message']} (hint: {diagnostic['hint']})"


def test_missing_file_is_a_message_not_a_traceback(tmp_path):
    result = ftc("validate", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{tmp_path / 'nope.toml'}: [E-FILE] ") and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_import_no_heavy_library(spec_file, command):
    probe = (
        "import sys\n"
        f"sys.argv = ['ftc', {command!r}, {str(spec_file)!r}]\n"
        "from ftc.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_plan_table_and_json(spec_file):
    table = ftc("plan", str(spec_file))
    assert table.returncode == 0, table.stderr
    for word in ("precision", "fp32", "micro-batch", "accumulation steps", "why"):
        assert word in table.stdout
    as_json = json.loads(ftc("plan", str(spec_file), "--format", "json").stdout)
    contract = {
        "backend", "precision", "quantization_bits", "strategy", "offload", "gradient_checkpointing",
        "micro_batch_size", "gradient_accumulation_steps", "global_batch_size", "world_size", "nodes",
        "memory", "time", "reasons", "limits",
    }  # fmt: skip
    assert contract <= set(as_json)
    assert as_json["backend"] == "cpu" and as_json["reasons"]["backend"]
    assert as_json["micro_batch_size"] * as_json["gradient_accumulation_steps"] == as_json["global_batch_size"] == 16
    assert as_json["quantization_bits"] is None and as_json["offload"] == "none"


def test_plan_errors_are_messages(spec_file):
    result = ftc("plan", str(spec_file), "--hardware", "8xH101")
    assert result.returncode == 1
    assert "error: unknown hardware 'H101'" in result.stderr and "Traceback" not in result.stderr


def test_launch_dry_run_writes_the_folder_and_runs_nothing(spec_file):
    (spec_file.parent / "data").mkdir()
    (spec_file.parent / "data" / "alpaca_en.json").write_text("[]")
    result = ftc("launch", str(spec_file), "--target", "local", "--dry-run")
    assert result.returncode == 0, result.stderr
    run_dir = spec_file.parent / "runs" / "quickstart"
    assert sorted(p.name for p in run_dir.iterdir()) == ["launch.json", "plan.json", "run.sh", "spec.toml"]
    assert "would run" in result.stdout and "ftc.runtime" in result.stdout
    again = ftc("launch", str(spec_file), "--dry-run", "--set", "train.seed=7")  # another dry run: refused, by key
    assert again.returncode == 1 and "train.seed 42 → 7" in again.stderr and "--overwrite" in again.stderr


def test_launch_names_a_missing_local_dataset_before_writing_anything(spec_file):
    result = ftc("launch", str(spec_file), "--dry-run")
    assert result.returncode == 1
    assert f"data.datasets[0].path: {spec_file.parent / 'data' / 'alpaca_en.json'} does not exist" in result.stderr
    assert not (spec_file.parent / "runs").exists()


def test_version():
    from ftc import __version__

    result = ftc("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"ftc {__version__}"


def test_plan_for_a_gpu_draws_memory_and_a_plan_that_cannot_fit_exits_1(spec_file):
    table = ftc("plan", str(spec_file), "--hardware", "1xA10G-24GB")
    assert table.returncode == 0, table.stderr
    assert "memory per device" in table.stdout and "reserved peak" in table.stdout and "█" in table.stdout
    as_json = json.loads(ftc("plan", str(spec_file), "--hardware", "1xA10G-24GB", "-f", "json").stdout)
    assert as_json["memory"]["capacity_gib"] == 22.5 and as_json["memory"]["terms"]["weights"] > 14
    huge = replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Llama-3.1-405B")
    spec_file.write_text(replace(huge, 'method = "lora"', 'method = "full"'))
    too_big = ftc("plan", str(spec_file), "--hardware", "1xT4-16GB")
    assert too_big.returncode == 1 and "does not fit" in too_big.stdout and "Traceback" not in too_big.stderr


def test_a_model_unknown_to_ftc_can_carry_its_shapes_in_the_spec(spec_file):
    unknown = replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", "my-org/private-model")
    spec_file.write_text(unknown)
    refused = ftc("plan", str(spec_file), "--hardware", "1xA10G-24GB")
    assert refused.returncode == 1 and "config.json" in refused.stderr
    shapes = (
        '[model.architecture]\nmodel_type = "llama"\nhidden_size = 2048\nintermediate_size = 8192\n'
        "num_hidden_layers = 16\nnum_attention_heads = 32\nnum_key_value_heads = 8\nvocab_size = 128256\n"
        "tie_word_embeddings = true\n"
    )
    spec_file.write_text(unknown + shapes)
    planned = ftc("plan", str(spec_file), "--hardware", "1xA10G-24GB", "-f", "json")
    assert planned.returncode == 0, planned.stderr
    weights = json.loads(planned.stdout)["memory"]["terms"]["weights"]
    assert weights == pytest.approx(1_235_814_400 * 2 / 2**30, rel=0.01)  # about Llama-3.2-1B in bf16


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["plan", "job.toml", "--nodes", "0"], "argument --nodes: 0 is below the least allowed, 1"),
        (["plan", "job.toml", "--nodes", "two"], "argument --nodes: 'two' is not a whole number"),
        (["plan", "job.toml", "--format", "yaml"], "argument --format/-f: invalid choice: 'yaml'"),
        (["plan", "job.toml", "--hardwre", "cpu"], "unrecognized arguments: --hardwre cpu"),
        (["lanch", "job.toml"], "invalid choice: 'lanch'"),
        (["validate"], "the following arguments are required: spec"),
    ],
)
def test_command_line_mistakes_are_usage_messages(args, expected):
    result = ftc(*args)
    assert result.returncode == 2
    assert expected in result.stderr and "usage: ftc" in result.stderr and "Traceback" not in result.stderr


def test_every_command_has_help_and_no_arguments_prints_the_list():
    from ftc.cli.app import COMMANDS

    listing = ftc()
    assert listing.returncode == 2
    for name, command in COMMANDS.items():
        assert name in listing.stdout and command.summary, name
    helped = ftc("launch", "--help")
    assert helped.returncode == 0
    for option in ("--target", "--dry-run", "--resume", "--locked", "--smoke-steps", "--set KEY=VALUE"):
        assert option in helped.stdout


def test_plan_help_lists_hardware_names_and_aliases_and_an_alias_plans_under_its_name(spec_file):
    helped = ftc("plan", "--help")
    assert helped.returncode == 0, helped.stderr
    text = " ".join(helped.stdout.split())  # argparse wraps the help at the terminal's width
    for shown in ("H100-80GB (H100)", "A100-40GB", "Ascend910B-64GB (910B, 910B-64GB, Ascend910B)", "(RTX4090, 4090)"):
        assert shown in text
    planned = ftc("plan", str(spec_file), "--hardware", "2xa10g", "-f", "json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["hardware"] == {"name": "A10G-24GB", "devices_per_node": 2, "nodes": 1}


def test_set_is_repeatable(spec_file):
    planned = ftc(
        "plan", str(spec_file), "-f", "json", "--set", "train.global_batch_size=32", "-s", "train.micro_batch_size=4"
    )
    assert planned.returncode == 0, planned.stderr
    as_json = json.loads(planned.stdout)
    assert (as_json["global_batch_size"], as_json["micro_batch_size"]) == (32, 4)
