"""The board's JSON endpoints, through FastAPI's TestClient: runs and their states, the editor's checks and
plans, saving with comments kept, the folder it never leaves, and its token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ftc.board.app import COOKIE, build_app
from ftc.errors import FtcError
from ftc.runs.metrics import add_trainer_log, new_metrics, write_metrics
from ftc.targets.local import RECORD_FILE
from tests.specs import VALID, replace
from tests.tiny_runs import tiny_spec

LOOPBACK = "http://127.0.0.1:7860"
COMMENTED = "# my LoRA run\n" + replace(VALID, "rank = 8", "rank = 8  # small on purpose")


@pytest.fixture
def board(tmp_path):
    return tmp_path, TestClient(build_app(tmp_path), base_url=LOOPBACK)


def a_run(run_folder, root: Path, name: str, losses: list[float], record: dict | None = None) -> Path:
    run_dir = run_folder(tiny_spec(root / "runs" / name, root / "model", root / "data.json"))
    metrics = new_metrics("sft", "lora")
    for step, loss in enumerate(losses, start=1):
        add_trainer_log(metrics, step * 5, {"loss": loss, "learning_rate": 1e-3, "epoch": step / 10})
    write_metrics(run_dir / "metrics.json", metrics)
    if record is not None:
        (run_dir / RECORD_FILE).write_text(json.dumps(record))
    return run_dir


def test_the_runs_list_shows_each_run_with_its_state_and_progress(board, run_folder):
    root, client = board
    now = time.time()
    a_run(
        run_folder, root, "good", [2.0, 1.5, 1.2], {"pid": 1, "started_at": now - 60, "exit_code": 0, "ended_at": now}
    )
    a_run(run_folder, root, "bad", [2.0], {"pid": 1, "started_at": now - 10, "exit_code": 1, "ended_at": now})
    runs = {run["path"]: run for run in client.get("/api/runs").json()["runs"]}
    assert set(runs) == {"runs/good", "runs/bad"}
    good = runs["runs/good"]
    assert (good["state"], good["step"], good["steps"], good["last_loss"]) == ("done", 15, 50, 1.2)
    assert (good["stage"], good["method"], good["target"]) == ("sft", "lora", "local")
    assert good["elapsed_s"] == pytest.approx(60, abs=1) and good["remaining_s"] is None
    assert runs["runs/bad"]["state"] == "failed" and runs["runs/bad"]["reason"] == "exit status 1"


def sleeper(cwd: Path) -> subprocess.Popen:
    """A stand-in for the runtime: a process working in a folder, as run.sh's does in its run folder."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=cwd)


def test_a_running_local_run_is_running_with_the_time_left_and_cancel_stops_it(board, run_folder):
    root, client = board
    run_dir = a_run(run_folder, root, "live", [2.0, 1.8], None)
    started = time.time() - 100
    stranger = sleeper(root)  # alive, but working elsewhere: a pid the system gave to another process
    try:
        (run_dir / RECORD_FILE).write_text(json.dumps({"pid": stranger.pid, "started_at": started}))
        assert client.get("/api/runs").json()["runs"][0]["state"] == "failed"
    finally:
        stranger.kill()
        stranger.wait()
    process = sleeper(run_dir)
    try:
        (run_dir / RECORD_FILE).write_text(json.dumps({"pid": process.pid, "started_at": started}))
        run = client.get("/api/run", params={"path": "runs/live"}).json()
        summary = run["summary"]
        assert summary["state"] == "running" and summary["step"] == 10 and summary["steps"] == 50
        # 100 s for 10 of 50 steps: 400 s to go.
        assert summary["remaining_s"] == pytest.approx(400, rel=0.05)
        assert [len(series["points"]) for series in run["series"] if series["name"] == "loss"] == [2]
        assert run["fits"] is True and run["hardware"] == "1xcpu"
        said = client.post("/api/run/cancel", json={"path": "runs/live"}).json()["said"]
        assert f"process {process.pid}" in said
        assert process.wait(timeout=10) == -15  # SIGTERM: the runtime checkpoints on it and stops
    finally:
        process.kill()
        process.wait()
    refused = client.post("/api/run/cancel", json={"path": "runs/live"})
    assert refused.status_code == 400 and "not running" in refused.json()["error"]


def test_a_slurm_run_takes_its_state_from_the_job_and_cancel_goes_through_scancel(board, run_folder, monkeypatch):
    import ftc.board.runs as board_runs
    import ftc.cli.jobs as jobs
    from ftc.targets.slurm_jobs import JobState, SlurmJobRecord, write_job_record

    root, client = board
    run_dir = a_run(run_folder, root, "cluster", [2.0, 1.7], None)
    write_job_record(run_dir, SlurmJobRecord(job_id="4242", submitted_at=time.time() - 30))
    states = {"4242": JobState("PENDING", "Resources")}
    monkeypatch.setattr(board_runs, "job_state", lambda job_id: states[job_id])
    monkeypatch.setattr(jobs, "job_state", lambda job_id: states[job_id])
    cancelled = []
    monkeypatch.setattr(jobs, "cancel_job", cancelled.append)

    def summary() -> dict:
        return client.get("/api/runs").json()["runs"][0]

    queued = summary()
    assert (queued["state"], queued["target"]) == ("queued", "slurm")
    assert queued["reason"] == "slurm job 4242: PENDING (Resources)"
    states["4242"] = JobState("RUNNING")
    assert summary()["state"] == "running"
    said = client.post("/api/run/cancel", json={"path": "runs/cluster"}).json()["said"]
    assert cancelled == ["4242"] and said == "cancelled slurm job 4242"
    states["4242"] = JobState("CANCELLED")
    assert summary()["state"] == "stopped"
    states["4242"] = JobState("OUT_OF_MEMORY")
    assert summary()["state"] == "failed"
    states["4242"] = JobState("COMPLETED")
    assert summary()["state"] == "done"


def test_a_dry_run_is_prepared_not_running(board, run_folder):
    root, client = board
    run_dir = run_folder(tiny_spec(root / "runs" / "dry", root / "model", root / "data.json"))
    (run_dir / "launch.json").write_text(json.dumps({"target": "slurm", "dry_run": True, "files": []}))
    [run] = client.get("/api/runs").json()["runs"]
    assert (run["state"], run["target"], run["step"], run["elapsed_s"]) == ("prepared", "slurm", None, None)


def test_a_typo_is_an_error_at_its_key_and_a_fixed_spec_a_plan_with_memory_bars(board):
    root, client = board
    typo = replace(VALID, "rank = 8", "rnak = 8")
    answer = client.post("/api/check", json={"path": "job.toml", "text": typo, "hardware": "1xA10G-24GB"}).json()
    [problem] = answer["diagnostics"]
    line = typo.splitlines().index("rnak = 8") + 1
    assert (problem["path"], problem["code"], problem["line"]) == ("lora.rnak", "E-UNKNOWN-KEY", line)
    assert "rank" in problem["hint"] and answer["plan"] is None
    fixed = client.post("/api/check", json={"path": "job.toml", "text": VALID, "hardware": "1xA10G-24GB"}).json()
    assert fixed["diagnostics"] == [] and fixed["values"]["lora"]["rank"] == 8
    memory = fixed["plan"]["memory"]
    assert memory["capacity_gib"] == 22.5 and memory["terms"]["weights"] > 14  # an 8B model's bf16 weights
    assert fixed["plan"]["fits"] is True and fixed["plan"]["limits"]["max_micro_batch_size"] >= 1
    assert not (root / "job.toml").exists()  # checking writes nothing


def test_a_plan_that_cannot_be_made_says_why(board):
    _, client = board
    answer = client.post("/api/check", json={"path": "job.toml", "text": VALID, "hardware": "8xH101"}).json()
    assert answer["plan"] is None and "unknown hardware 'H101'" in answer["plan_error"]["message"]


def test_form_edits_are_written_into_the_toml_keeping_its_comments(board):
    root, client = board
    edits = ["lora.rank=32", "train.learning_rate=2e-4", "lora.alpha=", "model.revision=2024", "freeze.layers=2"]
    answer = client.post(
        "/api/check", json={"path": "job.toml", "text": COMMENTED, "hardware": "cpu", "edits": edits}
    ).json()
    text = answer["text"]
    assert text.startswith("# my LoRA run\n") and "rank = 32  # small on purpose" in text
    assert "learning_rate = 2e-4" in text and "alpha" not in text
    assert 'revision = "2024"' in text  # text where the schema wants text, as --set types it
    assert "[freeze]\nlayers = 2" in text
    assert answer["values"]["lora"]["rank"] == 32
    saved = client.post("/api/save", json={"path": "specs/job.toml", "text": text})
    assert saved.json() == {"saved": "specs/job.toml"}
    assert (root / "specs" / "job.toml").read_text() == text
    assert client.get("/api/specs").json()["specs"] == ["specs/job.toml"]
    assert client.get("/api/spec", params={"path": "specs/job.toml"}).json()["text"] == text


@pytest.mark.parametrize(
    "name", ["../outside.toml", "/etc/outside.toml", "a/../../outside.toml", "link/outside.toml", "notes.txt"]
)
def test_the_editor_never_reads_or_writes_outside_its_folder_or_beyond_spec_files(tmp_path, name):
    root = tmp_path / "board"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a link inside the folder to the folder above it
    client = TestClient(build_app(root), base_url=LOOPBACK)
    saved = client.post("/api/save", json={"path": name, "text": "x = 1\n"})
    assert saved.status_code == 403, saved.json()
    assert not (tmp_path / "outside.toml").exists() and not (root / "notes.txt").exists()
    assert client.get("/api/spec", params={"path": name}).status_code == 403
    assert client.post("/api/check", json={"path": name, "text": VALID}).status_code == 403
    assert client.get("/api/run", params={"path": name.replace(".toml", "")}).status_code in (400, 403)


def test_a_run_folders_resolved_spec_is_not_edited(board, run_folder):
    root, client = board
    a_run(run_folder, root, "done", [1.0])
    refused = client.post("/api/save", json={"path": "runs/done/spec.toml", "text": VALID})
    assert refused.status_code == 403 and "resolved spec" in refused.json()["error"]


def test_a_launch_whose_run_folder_is_outside_the_board_is_refused(board, tmp_path_factory):
    root, client = board
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "run"
    text = replace(replace(VALID, 'dir = "runs/quickstart"', f'dir = "{elsewhere}"'), "data/alpaca_en.json", "d.json")
    (root / "d.json").write_text("[]")
    client.post("/api/save", json={"path": "job.toml", "text": text})
    refused = client.post("/api/launch", json={"path": "job.toml", "hardware": "1xA10G-24GB", "target": "local"})
    assert refused.status_code == 400 and "outside the board's folder" in refused.json()["error"]
    assert not elsewhere.exists() and not (root / ".ftc-board").exists()


def test_a_request_from_another_sites_page_is_refused(board):
    _, client = board
    refused = client.post(
        "/api/save", json={"path": "job.toml", "text": VALID}, headers={"Origin": "http://elsewhere.example"}
    )
    assert refused.status_code == 403


def test_with_a_token_every_request_needs_it_as_a_bearer_header_or_the_login_cookie(tmp_path):
    client = TestClient(build_app(tmp_path, token="s3cret"))
    assert client.get("/api/runs").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/?token=wrong", follow_redirects=False).status_code == 401
    login = client.get("/?token=s3cret", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    assert client.cookies.get(COOKIE) == "s3cret"
    assert client.get("/api/runs").status_code == 200


def test_beyond_loopback_the_board_warns_and_needs_a_token(tmp_path, capsys):
    from ftc.board.server import run_board

    with pytest.raises(FtcError, match="no API key guards it") as refused:
        run_board(tmp_path, host="0.0.0.0")
    assert "--auth-env" in refused.value.hint
    assert "warning: the board on 0.0.0.0" in capsys.readouterr().err
    with pytest.raises(FtcError, match="--auth-env BOARD_TOKEN_UNSET"):
        run_board(tmp_path, host="0.0.0.0", auth_env="BOARD_TOKEN_UNSET")


def test_the_command_refuses_an_open_host_without_a_token(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ftc", "board", str(tmp_path), "--share"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--auth-env" in result.stderr and "warning: the board on 0.0.0.0" in result.stderr


def test_the_page_and_its_assets_are_served_from_the_package(board):
    _, client = board
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/board.js">' in page.text
    assert "http" not in page.text.replace("http://www.w3.org", "")  # nothing fetched from elsewhere: works offline
    assert client.get("/static/board.js").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7860", "192.168.1.20:7860"])
def test_without_a_token_a_request_for_another_host_name_is_refused(board, host):
    """DNS rebinding: a page on a name that resolves to this machine would be same-origin with the board."""
    root, client = board
    refused = client.get("/api/runs", headers={"host": host})
    assert refused.status_code == 403 and "only to a loopback name" in refused.json()["error"]
    for name in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860"):
        assert client.get("/api/runs", headers={"host": name}).status_code == 200
