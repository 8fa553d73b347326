"""`ftc status / cancel / logs RUN_DIR`: the job id comes from the run folder; Slurm's answers from
stand-ins here (the real cluster is in test_slurm_cluster.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ftc.cli.jobs import cancel, follow_logs, show_status
from ftc.errors import FtcError
from ftc.targets.slurm_jobs import SlurmJobRecord, write_job_record


@pytest.fixture
def slurm_stand_ins(tmp_path, monkeypatch) -> Path:
    """scontrol answers from states.json (job id → JobState); scancel records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"states = json.load(open({str(tmp_path / 'states.json')!r}))\n"
        "job = sys.argv[-1]\n"
        "if job not in states: sys.exit(1)\n"
        "print(f'JobId={job} JobName=ftc-run JobState={states[job]} Reason=None Restarts=1 NodeList=vm')\n"
    )
    (bin_dir / "scancel").write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(tmp_path / 'scancel.log')!r}, 'a').write(sys.argv[1] + '\\n')\n"
    )
    for tool in ("scontrol", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def set_states(folder: Path, **states: str) -> None:
    (folder / "states.json").write_text(json.dumps({key.removeprefix("j"): value for key, value in states.items()}))


def test_a_folder_without_a_slurm_job_is_a_message(tmp_path):
    with pytest.raises(FtcError) as caught:
        show_status(tmp_path, as_json=False)
    assert "holds no Slurm job" in caught.value.message and "--target slurm" in caught.value.hint


def test_status_reads_the_recorded_job_and_the_progress(slurm_stand_ins, capsys):
    run_dir = slurm_stand_ins / "run"
    write_job_record(run_dir, SlurmJobRecord(job_id="12"))
    (run_dir / "metrics.json").write_text(json.dumps({"log": [{"step": 5, "loss": 1.0}, {"step": 7, "loss": 0.9}]}))
    set_states(slurm_stand_ins, j12="RUNNING")
    assert show_status(run_dir, as_json=False) == 0
    assert capsys.readouterr().out == "slurm job 12: RUNNING, restarted 1×; last logged step 7\n"
    show_status(run_dir, as_json=True)
    assert json.loads(capsys.readouterr().out) == {
        "job_id": "12", "state": "RUNNING", "reason": "", "restarts": 1, "last_logged_step": 7,
    }  # fmt: skip


def test_cancel_stops_the_smoke_and_the_full_job_while_active(slurm_stand_ins, capsys):
    run_dir = slurm_stand_ins / "run"
    write_job_record(run_dir, SlurmJobRecord(job_id="21", smoke_job_id="20"))
    set_states(slurm_stand_ins, j20="COMPLETED", j21="PENDING")
    assert cancel(run_dir) == 0
    assert (slurm_stand_ins / "scancel.log").read_text() == "21\n"
    assert "slurm job 20 is no longer active" in capsys.readouterr().out


def test_logs_prints_the_log_and_follow_returns_when_the_job_ends(slurm_stand_ins, capsys):
    run_dir = slurm_stand_ins / "run"
    write_job_record(run_dir, SlurmJobRecord(job_id="30"))
    set_states(slurm_stand_ins, j30="PENDING")
    with pytest.raises(FtcError, match="no log yet"):
        follow_logs(run_dir, follow=False)
    (run_dir / "slurm-30.log").write_text("step 1\n")
    set_states(slurm_stand_ins, j30="COMPLETED")
    assert follow_logs(run_dir, follow=True, poll_s=0.01) == 0
    assert capsys.readouterr().out == "step 1\n"
