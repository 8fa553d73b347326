"""`ftc launch --target slurm` against a real one-node Slurm (scripts/slurm/up.sh), as CI runs it.

The quickstart goes through a smoke job and then the full job to COMPLETED with its adapter; a job
requeued while it trains (`scontrol requeue`, as preemption does) checkpoints on Slurm's SIGTERM, and
on the time-limit warning (SIGUSR1) checkpoints and requeues itself; it finishes after its restarts
with every optimizer step logged once, its loss curve going on from where it stopped. submitit
submits the same run folder, of two processes, and its job starts them as the slurm target's does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftc.quickstart.workspace import write_quickstart
from ftc.targets.slurm_jobs import job_state, read_job_record

pytestmark = pytest.mark.slow
FTC = [sys.executable, "-m", "ftc"]


def ftc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*FTC, *args], capture_output=True, text=True, timeout=timeout)


def launch(spec: Path, *options: str, hardware: str = "cpu") -> Path:
    result = ftc("launch", str(spec), "--target", "slurm", "--hardware", hardware, *options)
    assert result.returncode == 0, result.stdout + result.stderr
    return spec.parent / "runs" / "quickstart"


def wait_for(condition, timeout: float, what: str, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def logged_steps(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / "metrics.json").read_text())["log"]
    except (OSError, ValueError):
        return []


def test_quickstart_runs_a_smoke_job_then_completes_on_slurm(slurm_cluster, tmp_path):
    spec = write_quickstart(tmp_path / "quick", steps=10)
    run_dir = launch(spec, "--smoke-steps", "2")
    record = read_job_record(run_dir)
    assert record.smoke_job_id and record.smoke_job_id != record.job_id

    # `ftc logs -f` follows the job while it waits on the smoke job and runs, and returns when it ends.
    follow = ftc("logs", str(run_dir), "-f", timeout=480)
    assert follow.returncode == 0, follow.stderr
    assert job_state(record.smoke_job_id).state == "COMPLETED"
    assert job_state(record.job_id).state == "COMPLETED", (run_dir / f"slurm-{record.job_id}.log").read_text()
    assert f"adapter: {run_dir / 'adapter'}" in follow.stdout

    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert [entry["step"] for entry in logged_steps(run_dir / "smoke")] == [1, 2]
    assert (run_dir / "smoke" / "adapter" / "adapter_model.safetensors").is_file()
    assert [entry["step"] for entry in logged_steps(run_dir)][-1] == 10
    status = ftc("status", str(run_dir))
    assert status.returncode == 0 and f"slurm job {record.job_id}: COMPLETED" in status.stdout


def release_when_requeued(job_id: str) -> None:
    # A requeued job waits for a new BeginTime (about two minutes); release it now.
    wait_for(lambda: job_state(job_id).state == "PENDING", 120, "the job to be requeued")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, capture_output=True)


def test_a_preempted_job_resumes_from_its_checkpoints_and_finishes_every_step_once(slurm_cluster, tmp_path):
    """Two interruptions: `scontrol requeue` (SIGTERM, as preemption), then the time-limit warning
    (SIGUSR1, sent with scancel --signal), after which the runtime requeues the job itself."""
    steps = 200  # long enough that a quiet machine is still training when the interruptions come
    spec = write_quickstart(tmp_path / "quick", steps=steps)
    text = spec.read_text()
    text = re.sub(r"logging_steps = \d+", "logging_steps = 1", text)
    text = re.sub(r"save_steps = \d+", "save_steps = 1000", text)  # only the interruptions' checkpoints exist
    text = text.replace("learning_rate = 2e-3", "learning_rate = 1e-2")
    spec.write_text(text)
    run_dir = launch(spec)
    job_id = read_job_record(run_dir).job_id

    wait_for(lambda: len(logged_steps(run_dir)) >= 5, 300, "the job to train a few steps")
    requeue = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    release_when_requeued(job_id)

    log_file = run_dir / f"slurm-{job_id}.log"
    wait_for(lambda: "resuming from checkpoint-" in log_file.read_text(), 300, "the restart")
    first_stop = int(re.search(r"stopped by SIGTERM at step (\d+)", log_file.read_text()).group(1))
    wait_for(lambda: len(logged_steps(run_dir)) >= first_stop + 4, 300, "the restarted job to train")
    warn = subprocess.run(["scancel", "--signal=USR1", job_id], capture_output=True, text=True)
    assert warn.returncode == 0, warn.stderr
    release_when_requeued(job_id)
    wait_for(lambda: not job_state(job_id).active, 400, "the job to end", poll=2)

    final = job_state(job_id)
    log_text = log_file.read_text()
    assert final.state == "COMPLETED", log_text[-3000:]
    assert final.restarts == 2
    second_stop = int(re.search(r"stopped by SIGUSR1 at step (\d+)", log_text).group(1))
    assert f"slurm job {job_id} requeued" in log_text  # by the runtime itself
    for stop in (first_stop, second_stop):
        assert f"resuming from checkpoint-{stop} (step {stop})" in log_text

    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = metrics["log"]
    assert [entry["step"] for entry in log] == list(range(1, steps + 1))  # none lost, none trained twice
    assert metrics["resumed_at_steps"] == [first_stop, second_stop] and 5 <= first_stop < second_stop < steps
    losses = [entry["loss"] for entry in log]
    # The curve goes on from where it stopped: after the restart it stays down where it was, far from the
    # untrained loss a fresh start would show again.
    before, after = losses[first_stop - 3 : first_stop], losses[first_stop : first_stop + 3]
    assert sum(after) / 3 < losses[0] * 0.9 and abs(sum(after) - sum(before)) / 3 < 0.1 * losses[0], losses
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_submitit_submits_the_run_folder_the_slurm_target_wrote(slurm_cluster, tmp_path):
    pytest.importorskip("submitit")
    from ftc.targets.submitit_jobs import submit_run

    spec = write_quickstart(tmp_path / "quick", steps=3)
    # Two processes: the runtime's pre-flight passes only if the job starts them as the slurm target does.
    run_dir = launch(spec, "--dry-run", hardware="2xcpu")
    job = submit_run(run_dir)
    # This cluster keeps no accounting (sacct), so submitit's own polling backs off slowly: watch its result file.
    wait_for(job.paths.result_pickle.exists, 300, "submitit's result")
    job.result()  # raises if the runtime failed
    assert "pre-flight: 2 ranks on 1 host(s)" in job.stdout(), job.stdout()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file()  # all 3 steps ran


def test_ftc_cancel_cancels_the_recorded_job(slurm_cluster, tmp_path):
    spec = write_quickstart(tmp_path / "quick", steps=1000)
    run_dir = launch(spec)
    job_id = read_job_record(run_dir).job_id
    cancelled = ftc("cancel", str(run_dir))
    assert cancelled.returncode == 0 and f"cancelled slurm job {job_id}" in cancelled.stdout, cancelled.stderr
    wait_for(lambda: job_state(job_id).state == "CANCELLED", 60, "the job to be cancelled")
    assert "CANCELLED" in ftc("status", str(run_dir)).stdout
