"""Every target's every rendered file, with hostile names in every path: clean scripts, no injection.

Each script must pass `bash -n` and shellcheck with no finding, and running it (with recording
stand-ins for python, srun, scontrol and docker) must pass every path as one word and never run
the payload. Secrets named in the spec reach the job by name; their values are in no rendered file.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess

import pytest

from ftc.errors import FtcError
from ftc.spec import SpecError
from ftc.targets import get_target
from ftc.targets.run_folder import write_run_folder
from tests.targets.rendering import HOSTILE_NAMES, make_job, recorded, write_recorders

ENTRY_SCRIPT = {"local": "run.sh", "slurm": "job.sbatch", "docker": "docker_run.sh"}
STAND_INS = ("srun", "scontrol", "docker", "python-stand-in")
SLURM_ENV = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "node-1", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0"}


def render_and_write(target_name: str, job) -> dict[str, str]:
    target = get_target(target_name, smoke_steps=3 if target_name == "slurm" else 0)
    rendered = target.render(job)
    write_run_folder(job.run_dir, rendered.files, set(rendered.executable), overwrite=False)
    return rendered.files


def scripts_of(files: dict[str, str]) -> list[str]:
    return [name for name in files if name.endswith((".sh", ".sbatch"))]


@pytest.mark.parametrize("target_name", sorted(ENTRY_SCRIPT))
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_names_stay_words_in_every_script(tmp_path, target_name, name, shellcheck):
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    write_recorders(bin_dir, log, STAND_INS)
    job = make_job(tmp_path, run_name=name, python=str(bin_dir / "python-stand-in"), local_name=name)
    files = render_and_write(target_name, job)
    scripts = [job.run_dir / script for script in scripts_of(files)]
    assert scripts, files.keys()

    for script in scripts:
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert syntax.returncode == 0, (script.name, syntax.stderr)
    lint = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout

    env = {**os.environ, **SLURM_ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    run = subprocess.run(["bash", str(job.run_dir / ENTRY_SCRIPT[target_name])], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert not list(tmp_path.rglob("pwned")), "the payload ran"

    calls = recorded(log)
    if target_name == "docker":
        build, docker_run = (call for call in calls if call["command"] == "docker")
        assert build["argv"][:2] == ["build", "--tag"] and build["stdin"] == files["Dockerfile"]
        assert docker_run["argv"][-1] == str(job.run_dir)  # the runtime's one argument, whole
        sources = [_mount_fields(arg)["source"] for arg in _values_of(docker_run["argv"], "--mount")]
        assert sources[:3] == [str(job.run_dir), job.spec.model.name_or_path, job.spec.data.datasets[0].path]
    else:
        runtime = [call["argv"] for call in calls if call["command"] == "python-stand-in" and "-m" in call["argv"]]
        assert runtime == [["-m", "ftc.runtime", str(job.run_dir)]]


def _values_of(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def _mount_fields(value: str) -> dict[str, str]:
    # docker reads --mount as one CSV record of key=value fields
    fields = next(csv.reader([value]))
    return dict(field.split("=", 1) if "=" in field else (field, "") for field in fields)


def test_the_dockerfile_is_instructions_with_json_arguments(tmp_path):
    job = make_job(tmp_path, run_name=HOSTILE_NAMES[5], docker={"ftc_requirement": "ftc[train]==0.1.0"})
    dockerfile = get_target("docker").render(job).files["Dockerfile"]
    for line in filter(None, dockerfile.splitlines()):
        if line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        assert instruction in {"FROM", "ENV", "RUN", "USER", "WORKDIR", "ENTRYPOINT"}, line
        if instruction in {"RUN", "ENTRYPOINT"}:
            assert isinstance(json.loads(argument), list), line
    assert '"ftc[train]==0.1.0"' in dockerfile and "USER ftc" in dockerfile


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ({"launch": {"secrets": ["HF_TOKEN; touch pwned"]}}, "launch.secrets"),
        ({"slurm": {"extra_sbatch": ["--comment=a b"]}}, "slurm.extra_sbatch"),
        ({"slurm": {"extra_sbatch": ["--chdir=$HOME"]}}, "slurm.extra_sbatch"),
        ({"slurm": {"extra_sbatch": ["--x\n#SBATCH --y"]}}, "slurm.extra_sbatch"),
        ({"slurm": {"partition": "gpu normal"}}, "slurm.partition"),
        ({"slurm": {"time_limit": "$(date)"}}, "slurm.time_limit"),
        ({"docker": {"base_image": "ubuntu\nRUN touch pwned"}}, "docker.base_image"),
        ({"docker": {"ftc_requirement": "ftc'; touch pwned"}}, "docker.ftc_requirement"),
    ],
)
def test_values_that_cannot_be_written_literally_are_refused_with_their_key(tmp_path, section, value):
    with pytest.raises(SpecError) as caught:
        make_job(tmp_path, **section)
    assert [(d.path, d.code) for d in caught.value.diagnostics] == [(value, "E-FORMAT")]


def test_a_container_image_with_an_unmountable_run_folder_is_refused(tmp_path):
    job = make_job(tmp_path, run_name="a,b", slurm={"container_image": "nvcr.io/nvidia/pytorch:24.12-py3"})
    with pytest.raises(FtcError) as caught:
        get_target("slurm").render(job)
    assert "output.dir" in caught.value.message


def test_secrets_pass_by_name_and_their_values_are_in_no_rendered_file(tmp_path, monkeypatch, shellcheck):
    values = {"HF_TOKEN": "hf_secret_value_4242", "WANDB_API_KEY": "wandb-secret-value-4343"}
    for key, secret in values.items():
        monkeypatch.setenv(key, secret)
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    write_recorders(bin_dir, log, STAND_INS)
    for target_name in sorted(ENTRY_SCRIPT):
        job = make_job(tmp_path, run_name=f"run-{target_name}", python=str(bin_dir / "python-stand-in"),
                       launch={"secrets": sorted(values)})  # fmt: skip
        files = render_and_write(target_name, job)
        env = {**os.environ, **SLURM_ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        run = subprocess.run(["bash", str(job.run_dir / ENTRY_SCRIPT[target_name])], capture_output=True,
                             text=True, cwd=tmp_path, env=env, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stderr
        on_disk = "".join(path.read_text() for path in job.run_dir.rglob("*") if path.is_file())
        assert all(secret not in on_disk for secret in values.values()), target_name
        if target_name != "local":
            assert all(key in "".join(files.values()) for key in values), target_name
    docker_run = [call["argv"] for call in recorded(log) if call["command"] == "docker" and call["argv"][0] == "run"]
    assert sorted(_values_of(docker_run[0], "--env")) == sorted([*values, "HF_HOME=/hf-cache"])
    assert not any(secret in json.dumps(recorded(log)) for secret in values.values())


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_names_in_a_two_node_gpu_job(tmp_path, name, shellcheck):
    """The multi-node path: GPUs in #SBATCH, torchrun on each node, its rank and rendezvous from Slurm."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    write_recorders(bin_dir, log, STAND_INS)
    job = make_job(tmp_path, run_name=name, hardware="8xH100-80GB", nodes=2, python=str(bin_dir / "python-stand-in"))
    files = render_and_write("slurm", job)
    scripts = [str(job.run_dir / script) for script in scripts_of(files)]
    lint = subprocess.run([shellcheck, "--severity=style", *scripts], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    env = {**os.environ, **SLURM_ENV, "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    run = subprocess.run(["bash", str(job.run_dir / "job.sbatch")], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert not list(tmp_path.rglob("pwned")), "the payload ran"
    [launch] = [call["argv"] for call in recorded(log) if call["command"] == "python-stand-in" and "-m" in call["argv"]]
    assert launch[-3:] == ["--module", "ftc.runtime", str(job.run_dir)]
    assert launch[launch.index("--node-rank") + 1] == "1" and launch[launch.index("--nnodes") + 1] == "2"
