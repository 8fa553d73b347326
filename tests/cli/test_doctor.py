"""`ftc doctor`: installed versions against the tested set, what a plan needs, and the exit status."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from ftc.cli import doctor_probes
from ftc.cli.app import _load_and_plan
from ftc.cli.doctor import CORE_STACK, diagnose, needs, run_doctor
from ftc.cli.doctor_probes import MISSING, OK, WARN, Row, answer, deepspeed_rows, others_row, quiet, slurm_rows
from ftc.cli.output import console
from ftc.errors import FtcError
from ftc.install.tested_versions import compare, normalise, read_tested_set
from tests.commands import ROOT, ftc
from tests.specs import VALID, replace


@pytest.fixture(autouse=True)
def at_the_repository_root(monkeypatch):
    """Where the hints name the tested set as plain constraints.txt, as the README's commands do."""
    monkeypatch.chdir(ROOT)


def lookup(versions: dict[str, str]):
    table = {normalise(name): version for name, version in versions.items()}
    return lambda name: table.get(normalise(name))


def environment_with(**changed: str | None):
    """The tested set installed, with some packages at another version (or None: not installed)."""
    installed = {pin.name: pin.version for pin in read_tested_set()} | changed
    return lookup({name: version for name, version in installed.items() if version is not None})


def stand_in(*rows: Row):
    """A machine probe that finds these rows, so the tests neither import torch nor ask docker."""
    return lambda installed: list(rows)


def rows_by_name(diagnosis) -> dict[str, Row]:
    return {row.what: row for row in diagnosis.rows}


def test_without_a_spec_only_the_core_training_stack_is_needed():
    assert needs() == dict.fromkeys(CORE_STACK, "every run")
    assert needs(target="docker")["docker daemon"] == "--target docker"


def test_a_qlora_zero2_plan_on_gpus_submitted_to_slurm_needs_its_libraries_devices_and_client(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(replace(VALID, 'method = "lora"', 'method = "qlora"\nstrategy = "zero2"'))
    loaded, plan = _load_and_plan(spec, "2xH100-80GB", 1)
    needed = needs(loaded.spec, plan, "slurm")
    assert needed == {
        **dict.fromkeys(CORE_STACK, "every run"),
        "bitsandbytes": "the plan: qlora",
        "bitsandbytes backend": "the plan: qlora",
        "deepspeed": "the plan: distributed",
        "cuda devices": "the plan: cuda",
        "slurm client": "--target slurm",
    }  # no "deepspeed ops": ZeRO on GPUs without offload compiles no CPU op


def test_the_environment_with_passes_and_a_missing_optional_library_is_only_reported(capsys):
    assert run_doctor("table", installed=environment_with(deepspeed=None), probes=()) == 0
    table = capsys.readouterr().out
    assert "every run" in table and "deepspeed" in table and "not installed" in table


def test_a_needed_library_at_another_version_or_missing_exits_1_with_the_pip_command(capsys, monkeypatch):
    monkeypatch.setattr(console(), "width", 200)  # one line a row, whatever the terminal
    installed = environment_with(accelerate="1.17.0", peft=None, numpy="1.0.0")
    with pytest.raises(FtcError) as caught:
        run_doctor("table", installed=installed, probes=())
    assert caught.value.message == (
        "this machine lacks what a run needs: peft: not installed (tested 0.21.2), accelerate: 1.17.0 (tested 1.16.0)"
    )
    assert caught.value.hint == "pip install -c constraints.txt peft accelerate"
    table = capsys.readouterr().out
    assert "1.17.0 (tested 1.16.0)" in table
    assert "numpy 1.0.0 (tested 2.4.6)" in table  # an unneeded difference is shown, not fatal


def test_the_json_object_has_every_row_and_names_the_problems(capsys):
    installed = environment_with(transformers="5.25.0")
    client = Row("docker client", "docker on PATH", OK)
    daemon = Row("docker daemon", "not answering", MISSING, hint="start the docker daemon")
    with pytest.raises(FtcError, match="docker daemon") as caught:
        run_doctor("json", target="docker", installed=installed, probes=[stand_in(client, daemon)])
    assert caught.value.hint == "pip install -c constraints.txt transformers; start the docker daemon"
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["constraints"] == "constraints.txt"
    assert document["problems"] == ["transformers", "docker daemon"]
    rows = {row["what"]: row for row in document["rows"]}
    assert set(rows["transformers"]) == {"what", "found", "status", "tested", "hint", "needed_for"}
    assert rows["transformers"] | {"hint": None} == {
        "what": "transformers",
        "found": "5.25.0",
        "status": WARN,
        "tested": "5.24.0",
        "hint": None,
        "needed_for": "every run",
    }
    assert rows["docker daemon"]["needed_for"] == "--target docker"
    assert rows["Jinja2"]["status"] == OK and rows["Jinja2"]["needed_for"] is None
    assert rows["other pinned packages"]["status"] == OK


def test_a_needed_library_the_tests_do_not_pin_gets_a_row_of_its_own(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(VALID + '\n[monitor]\nreport_to = ["wandb"]\n')
    loaded, plan = _load_and_plan(spec, "cpu", 1)
    diagnosis = diagnose(needs(loaded.spec, plan), environment_with(), probes=())
    assert rows_by_name(diagnosis)["wandb"] == Row(
        "wandb", "not installed", MISSING, hint="pip install wandb", needed_for="the plan: wandb"
    )
    assert [row.what for row in diagnosis.problems] == ["wandb"]


def test_the_other_pinned_packages_are_counted_and_the_first_differences_named():
    pins = read_tested_set()[:8]
    installed = {pin.name: pin.version for pin in pins[2:]} | {pin.name: "0.0.1" for pin in pins[3:8]}
    row = others_row(compare(pins, lookup(installed)))
    assert row.status == WARN
    assert row.found.startswith("1 ok, 5 other version, 2 not installed: ")
    assert row.found.endswith(" and 1 more") and row.found.count("(tested ") == 4


def test_a_command_that_does_not_answer_in_time_is_a_finding(monkeypatch):
    monkeypatch.setattr(doctor_probes, "PROBE_TIMEOUT_S", 0.2)
    assert answer([sys.executable, "-c", "import time; time.sleep(5)"]) == (False, "no answer within 0.2 s")
    assert answer([sys.executable, "-c", "import sys; sys.exit('refused')"]) == (False, "refused")
    assert answer(["ftc-no-such-command"])[0] is False


def test_without_slurm_on_path_its_client_and_controller_are_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    client, controller = slurm_rows(lambda name: None)
    assert (client.found, client.status) == ("not on PATH: sbatch, squeue", MISSING)
    assert (controller.found, controller.status) == ("sinfo not on PATH", MISSING)


def test_deepspeed_ops_without_a_compiler_or_ninja_are_a_warning_with_the_fix(monkeypatch, tmp_path):
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    (row,) = deepspeed_rows(lambda name: "installed")
    assert row.status == WARN and row.found.endswith("c++ and ninja not on PATH")
    assert "built on first use: cpu_adam" in row.found  # ZeRO-Offload's optimizer, on any accelerator
    assert "g++" in row.hint and "ninja" in row.hint


def test_quiet_swallows_what_an_import_says(capsys):
    with quiet():
        print("noise", file=sys.stderr)
        logging.getLogger("bitsandbytes").warning("Failed to load CPU gemm_4bit_forward")
    assert capsys.readouterr() == ("", "")
    assert logging.getLogger("bitsandbytes").isEnabledFor(logging.WARNING)  # and restores logging after


def test_doctor_on_this_machine_passes_and_sees_the_cpu_build_of_torch():
    """The venv is installed from constraints.txt: every key library is at its tested version (except where
    scripts/check-newest.sh installed newer releases on purpose: then doctor must say so, and exit 1)."""
    result = ftc("doctor", "--format", "json", timeout=120)
    assert result.stderr == ""  # bitsandbytes' and DeepSpeed's import-time lines are kept out
    rows = {row["what"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["torch build"]["found"].startswith("CPU (torch 2.13.0")
    if os.environ.get("FTC_TRYING_NEWEST") != "1":
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(rows[name]["status"] == OK for name in CORE_STACK)
        assert rows["other pinned packages"]["status"] == OK
    assert rows["bitsandbytes backend"]["found"].startswith("CPU")
    assert rows["deepspeed ops"]["status"] in (OK, WARN)  # WARN on a machine without a C++ compiler


def test_each_quantization_backend_says_whether_it_runs_here_and_a_plan_needs_its_row():
    from dataclasses import replace as changed

    from ftc.cli.doctor_probes import quantization_rows
    from ftc.compiler.plan import Decision
    from ftc.spec.models import Spec
    from tests.tiny_runs import cpu_plan

    present = {"hqq": "0.2.8.post1", "torch": None}
    rows = {row.what: row for row in quantization_rows(lambda name: present.get(name))}
    assert rows["hqq quantization"].status == "ok" and "cpu" in rows["hqq quantization"].found
    assert rows["eetq quantization"].status == "missing" and "kernels not installed" in rows["eetq quantization"].found
    assert (
        "gptqmodel not installed" in rows["gptq quantization"].found and "ftc[gptq]" in rows["gptq quantization"].hint
    )
    spec = Spec.model_validate(
        {
            "model": {"name_or_path": "m"},
            "data": {"datasets": [{"path": "d.json"}]},
            "train": {"method": "qlora", "max_steps": 1},
            "quantization": {"backend": "hqq"},
        }
    )
    plan = changed(cpu_plan(), quantization_backend=Decision("hqq", "test"), quantization_bits=Decision(4, "test"))
    assert needs(spec, plan)["hqq quantization"] == "the plan: hqq"


def test_a_liger_plan_with_flash_attention_needs_both_packages_and_the_gpus(tmp_path):
    spec = tmp_path / "job.toml"
    with_liger = replace(VALID, "seed = 42", 'seed = 42\nkernels = ["liger"]')
    spec.write_text(replace(with_liger, "[data]", 'attention = "flash"\n\n[data]'))
    loaded, plan = _load_and_plan(spec, "1xH100-80GB", 1)
    needed = needs(loaded.spec, plan)
    assert needed["liger-kernel"] == "the plan: liger" and needed["flash-attn"] == "the plan: flash"
    assert needed["cuda devices"] == "the plan: cuda"
    # Neither is pinned by the tests (CUDA only): found by metadata, triton beside liger-kernel.
    here = diagnose(needed, lookup({"liger-kernel": "0.8.5", "triton": "3.9.0"}), probes=[doctor_probes.kernel_rows])
    rows = rows_by_name(here)
    assert (rows["liger-kernel"].found, rows["liger-kernel"].status) == ("0.8.5, triton 3.9.0", OK)
    assert rows["flash-attn"].status == MISSING and "--no-build-isolation" in rows["flash-attn"].hint
    no_triton = rows_by_name(diagnose(needed, lookup({"liger-kernel": "0.8.5"}), probes=[doctor_probes.kernel_rows]))
    assert no_triton["liger-kernel"].found == "0.8.5, triton not installed"
    assert no_triton["liger-kernel"].status == MISSING and "ftc[liger]" in no_triton["liger-kernel"].hint
    # Without the probe, the unpinned package is still looked up rather than left unchecked.
    unprobed = rows_by_name(diagnose(needed, lookup({"liger-kernel": "0.8.5"}), probes=()))
    assert (unprobed["liger-kernel"].found, unprobed["liger-kernel"].status) == ("0.8.5", OK)


def test_flash_attention_on_an_npu_needs_no_flash_attn_package(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(replace(VALID, "[data]", 'attention = "flash"\n\n[data]'))
    loaded, plan = _load_and_plan(spec, "1xAscend910B-64GB", 1)
    assert plan.attention.value == "flash" and "flash-attn" not in needs(loaded.spec, plan)


def test_shifted_sparse_attention_needs_transformers_attention_interface(tmp_path):
    from ftc.cli.doctor_probes import attention_interface_rows

    spec = tmp_path / "job.toml"
    spec.write_text(replace(VALID, "seed = 42", "seed = 42\nshift_attention = true"))
    loaded, plan = _load_and_plan(spec, "1xH100-80GB", 1)
    assert needs(loaded.spec, plan)["attention interface"] == "train.shift_attention"
    assert "attention interface" not in needs()
    (found,) = attention_interface_rows(environment_with(transformers="5.24.0"))
    assert (found.found, found.status) == ("transformers 5.24.0", "ok")
    (old,) = attention_interface_rows(environment_with(transformers="4.46.0"))
    assert old.status == "missing" and "5.x" in old.hint


def test_an_image_model_plan_needs_pillow_and_working_image_processors_and_a_text_plan_does_not(tmp_path):
    from ftc.install.extras import extras_for

    spec = tmp_path / "job.toml"
    spec.write_text(replace(VALID, "meta-llama/Meta-Llama-3-8B-Instruct", "Qwen/Qwen2-VL-2B-Instruct"))
    loaded, plan = _load_and_plan(spec, "1xA100-80GB", 1)
    needed = needs(loaded.spec, plan)
    assert needed["pillow"] == needed["image processors"] == "the plan: vision"
    assert "vision" in extras_for(loaded.spec, plan)
    text = tmp_path / "text.toml"
    text.write_text(VALID)
    loaded, plan = _load_and_plan(text, "1xA100-80GB", 1)
    assert "pillow" not in needs(loaded.spec, plan) and "vision" not in extras_for(loaded.spec, plan)


def test_image_processors_need_pillow_and_not_torchvision(monkeypatch):
    (row,) = doctor_probes.image_processor_rows(lookup({"pillow": "13.0.0"}))
    assert row.status == OK and "torchvision not installed (not needed)" in row.found
    assert "Pillow processors" in row.found
    (row,) = doctor_probes.image_processor_rows(lookup({}))
    assert row.status == MISSING and "ftc[vision]" in row.hint


def test_a_torchvision_that_does_not_import_is_named_with_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    (row,) = doctor_probes.image_processor_rows(lookup({"pillow": "13.0.0", "torchvision": "0.28.0+cu128"}))
    assert row.status == MISSING and "torchvision 0.28.0+cu128 does not import (operator torchvision::nms" in row.found
    assert "pip uninstall torchvision" in row.hint
