"""The launch line: one process, or torchrun with the rendezvous the target supplies, the same for local and slurm."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ftc.targets.launcher import FROM_NODE_ENVIRONMENT, ONE_NODE, launch_command
from ftc.targets.local import LocalTarget
from ftc.targets.render import FromShell
from ftc.targets.slurm import NODE_SCRIPT, SlurmTarget, launcher_command
from tests.targets.rendering import make_job, torchrun_options

ROOT = Path(__file__).resolve().parents[2]
LLAMA_70B_FULL = ROOT / "examples" / "llama3-70b-full-2x8xh100.toml"


def test_one_process_runs_the_runtime_itself(tmp_path):
    job = make_job(tmp_path)
    assert launch_command(job, ONE_NODE) == [sys.executable, "-m", "ftc.runtime", str(job.run_dir)]


def test_two_cpu_processes_start_through_torchrun_on_one_node(tmp_path):
    job = make_job(tmp_path, hardware="2xcpu")
    words = launch_command(job, ONE_NODE)
    assert words[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert words[-3:] == ["--module", "ftc.runtime", str(job.run_dir)]
    options = torchrun_options(words)
    assert options["--nproc-per-node"] == "2" and options["--nnodes"] == "1" and options["--node-rank"] == "0"
    assert (options["--rdzv-backend"], options["--rdzv-endpoint"]) == ("c10d", "127.0.0.1:0")
    assert options["--rdzv-conf"] == "join_timeout=900"  # launch.rendezvous_timeout_s
    assert options["--max-restarts"] == "0"


def test_the_local_script_runs_torchrun_and_the_cpu_sets_no_visible_devices(tmp_path):
    rendered = LocalTarget().render(make_job(tmp_path, hardware="2xcpu"))
    script = rendered.files["run.sh"]
    assert "-m torch.distributed.run --nnodes 1 --nproc-per-node 2" in script
    assert "VISIBLE_DEVICES" not in script


@pytest.mark.parametrize(
    "hardware, variable, devices",
    [
        ("8xH100-80GB", "CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7"),
        ("2xAscend910B-64GB", "ASCEND_RT_VISIBLE_DEVICES", "0,1"),
    ],
)
def test_the_device_backend_decides_which_devices_the_local_processes_see(tmp_path, hardware, variable, devices):
    script = LocalTarget().render(make_job(tmp_path, hardware=hardware)).files["run.sh"]
    # The plan's devices by default; a value the user exported wins.
    assert f'{variable}="${{{variable}:-{devices}}}"' in script
    assert f"export {variable}" in script


def test_the_slurm_node_script_reads_the_rendezvous_and_node_rank_job_sbatch_exports(tmp_path):
    job = make_job(tmp_path, hardware="8xH100-80GB")
    words = launcher_command(job)
    options = torchrun_options(words)
    assert options["--nnodes"] == FromShell("$NNODES")
    assert options["--node-rank"] == FromShell("$NODE_RANK")  # the one name, set from SLURM_NODEID
    assert options["--rdzv-endpoint"] == FromShell("$MASTER_ADDR:$MASTER_PORT")
    assert options["--rdzv-backend"] == "static"  # it honours NODE_RANK; c10d would number nodes by arrival
    assert options["--rdzv-conf"] == "timeout=900"
    node_script = SlurmTarget().render(job).files[NODE_SCRIPT]
    assert '--node-rank "$NODE_RANK"' in node_script
    assert '--rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT"' in node_script


def test_the_node_script_expands_the_rendezvous_when_it_runs(tmp_path):
    """Run node_launch.sh as srun would, with a stand-in python that records the argv it was given."""
    recorder = tmp_path / "python"
    recorder.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n", encoding="utf-8")
    recorder.chmod(0o755)
    job = make_job(tmp_path, hardware="2xcpu", python=str(recorder))
    script = tmp_path / NODE_SCRIPT
    script.write_text(SlurmTarget().render(job).files[NODE_SCRIPT], encoding="utf-8")
    job.run_dir.mkdir()
    environment = {**os.environ, "SLURM_NODEID": "1", "NNODES": "2", "MASTER_ADDR": "node-a", "MASTER_PORT": "29411"}
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    options = torchrun_options(["torch.distributed.run", *json.loads(result.stdout)[2:]])
    assert (options["--nnodes"], options["--node-rank"], options["--rdzv-endpoint"]) == ("2", "1", "node-a:29411")


def test_launch_env_passes_nccl_settings_through_on_every_target(tmp_path):
    job = make_job(
        tmp_path, hardware="8xH100-80GB", launch={"env": {"NCCL_IB_HCA": "mlx5_0,mlx5_1", "NCCL_DEBUG": "WARN"}}
    )
    for words in (launch_command(job, ONE_NODE), launcher_command(job)):
        assert words[:3] == ["env", "NCCL_DEBUG=WARN", "NCCL_IB_HCA=mlx5_0,mlx5_1"]
    assert "exec env NCCL_DEBUG=WARN NCCL_IB_HCA=mlx5_0,mlx5_1 " in LocalTarget().render(job).files["run.sh"]


def test_several_nodes_started_by_hand_need_the_node_variables(tmp_path):
    job = make_job(tmp_path, hardware="8xH100-80GB")
    job = dataclasses.replace(job, plan=_on_nodes(job.plan, 2))
    script = LocalTarget().render(job).files["run.sh"]
    assert ': "${NODE_RANK:?export NODE_RANK before starting run.sh on each node}"' in script
    assert torchrun_options(launch_command(job, FROM_NODE_ENVIRONMENT))["--nnodes"] == FromShell("$NNODES")


def test_a_shell_word_holds_only_plain_expansions():
    with pytest.raises(ValueError):
        FromShell("$(touch pwned)")


def test_dry_run_of_a_70b_full_fine_tune_on_two_h100_nodes_shows_zero3_and_the_multi_node_line(tmp_path):
    spec = tmp_path / LLAMA_70B_FULL.name
    spec.write_text(LLAMA_70B_FULL.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alpaca_en.json").write_text('[{"instruction": "hi", "output": "hello"}]', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ftc", "launch", str(spec), "--target", "slurm", "--hardware", "8xH100-80GB",
         "--nodes", "2", "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "deepspeed.json" in shown and '"stage": 3' in shown
    assert '--nnodes "$NNODES" --nproc-per-node 8 --node-rank "$NODE_RANK"' in shown
    assert "NCCL_IB_HCA=mlx5" in shown
    run_dir = tmp_path / "runs" / "llama3-70b-full"
    config = json.loads((run_dir / "deepspeed.json").read_text(encoding="utf-8"))
    assert config["zero_optimization"]["stage"] == 3
    assert tomllib.loads((run_dir / "spec.toml").read_text(encoding="utf-8"))["launch"]["collective_timeout_s"] == 3600


def _on_nodes(plan, nodes: int):
    return dataclasses.replace(plan, hardware=dataclasses.replace(plan.hardware, nodes=nodes))


@pytest.mark.parametrize("hardware, nodes", [("2xcpu", 1), ("8xH100-80GB", 2), ("2xAscend910B-64GB", 1)])
def test_every_distributed_script_passes_shellcheck(tmp_path, shellcheck, hardware, nodes):
    job = make_job(tmp_path, hardware=hardware, launch={"env": {"NCCL_SOCKET_IFNAME": "ib0,eth 0"}})
    job = dataclasses.replace(job, plan=_on_nodes(job.plan, nodes))
    files = {**LocalTarget().render(job).files, **SlurmTarget().render(job).files}
    scripts = []
    for name in ("run.sh", NODE_SCRIPT, "job.sbatch"):
        scripts.append(tmp_path / name)
        scripts[-1].write_text(files[name], encoding="utf-8")
    lint = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
