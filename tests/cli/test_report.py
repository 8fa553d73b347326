"""`ftc report RUN_DIR`: the summary and curves from metrics.json alone, no torch, and plain errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ftc.cli.report import report_run
from ftc.errors import FtcError
from ftc.runs.metrics import add_trainer_log, new_metrics, write_metrics

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def write_kto_run(run_dir):
    metrics = new_metrics("kto", "full")
    for step in range(1, 6):
        logs = {"loss": 0.5 - step / 20, "rewards/chosen": step / 10, "rewards/rejected": -step / 5}
        add_trainer_log(metrics, step, {**logs, "rewards/margins": 0.3 * step})
    add_trainer_log(metrics, 5, {"train_runtime": 3.25})
    run_dir.mkdir()
    (run_dir / "model").mkdir()
    write_metrics(run_dir / "metrics.json", metrics)
    return run_dir


def test_report_prints_the_summary_and_writes_every_curve_the_run_has(tmp_path, capsys):
    run_dir = write_kto_run(tmp_path / "run")
    assert report_run(run_dir) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"kto · full · {run_dir}"
    assert out[1].startswith("loss 0.450 → 0.250")
    assert "reward margin (chosen − rejected): 0.300 → 1.500  ▁▃▄▆█" in out
    assert "trained in 3.2 s" in out and f"model: {run_dir / 'model'}" in out
    assert out[-1] == f"curves: loss.png, rewards.png, margin.png in {run_dir}"
    assert not (run_dir / "accuracy.png").exists()  # kto logs no accuracy


def test_report_on_a_folder_without_metrics_is_a_user_error(tmp_path):
    with pytest.raises(FtcError, match="metrics.json not found") as caught:
        report_run(tmp_path)
    assert "ftc launch" in caught.value.hint
    (tmp_path / "metrics.json").write_text('{"stage": "sft"')
    with pytest.raises(FtcError, match="is not a metrics file"):
        report_run(tmp_path)


def test_the_command_needs_no_heavy_library_and_exits_1_without_a_traceback(tmp_path):
    run_dir = write_kto_run(tmp_path / "run")
    probe = (
        "import sys\n"
        f"sys.argv = ['ftc', 'report', {str(run_dir)!r}]\n"
        "from ftc.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (run_dir / "loss.png").read_bytes().startswith(b"\x89PNG")

    missing = subprocess.run(
        [sys.executable, "-m", "ftc", "report", str(tmp_path / "absent")], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 1 and "metrics.json not found" in missing.stderr
    assert "Traceback" not in missing.stderr
