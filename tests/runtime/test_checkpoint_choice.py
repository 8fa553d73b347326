"""Choosing the checkpoint to resume from: only whole ones count, a cut one is skipped and said so."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ftc.runs.checkpoints import choose_checkpoint, latest_checkpoint, rotate_checkpoints
from ftc.runs.fingerprint import FINGERPRINT_FILE
from ftc.runs.folder import RunFolder
from ftc.runs.seal import SEAL_FILE, write_seal
from ftc.runtime.checkpoint_sealing import SealCheckpoints
from ftc.runtime.distributed.resume import matching_checkpoint


def trainer_checkpoint(checkpoints: Path, step: int, sealed: bool = True) -> Path:
    """The files the trainer writes for a LoRA run, small but real: safetensors weights, torch files."""
    import torch
    from safetensors.torch import save_file

    folder = checkpoints / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"lora_A": torch.ones(4, 8), "lora_B": torch.zeros(8, 4)}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text("{}")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        torch.save({"state": torch.arange(64)}, folder / name)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if sealed:
        write_seal(folder, step)
    return folder


def cut_checkpoint(checkpoints: Path, step: int) -> Path:
    """What a process killed while saving can leave: the folder with trainer_state.json only."""
    folder = checkpoints / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_a_cut_checkpoint_beside_a_sealed_one_is_skipped_and_said_so(tmp_path):
    sealed = trainer_checkpoint(tmp_path, 10)
    cut_checkpoint(tmp_path, 20)
    choice = choose_checkpoint(tmp_path)
    assert choice.chosen == sealed
    assert choice.lines() == [
        "skipped checkpoint-20: incomplete (no seal; holds only trainer_state.json) — resuming from checkpoint-10"
    ]
    assert latest_checkpoint(tmp_path) == sealed  # what `ftc launch --resume` checks before starting the job


def test_the_resume_path_names_the_skipped_checkpoint_and_removes_it(tmp_path, capsys):
    folder = RunFolder(path=tmp_path, spec=None, plan=None)  # only its paths are read
    current = {"schedule": {"train.max_steps": 30}, "data": {"examples": 8, "sha256": "ab"}}
    (tmp_path / FINGERPRINT_FILE).write_text(json.dumps(current))
    trainer_checkpoint(folder.checkpoints, 10)
    cut_checkpoint(folder.checkpoints, 20)

    assert matching_checkpoint(folder, current) == folder.checkpoints / "checkpoint-10"
    assert "skipped checkpoint-20: incomplete (no seal; holds only trainer_state.json)" in capsys.readouterr().out
    assert not (folder.checkpoints / "checkpoint-20").exists()  # the run writes it again, not into the cut one


def test_with_no_whole_checkpoint_the_run_starts_over(tmp_path, capsys):
    folder = RunFolder(path=tmp_path, spec=None, plan=None)
    current = {"schedule": {}, "data": {"examples": 8, "sha256": "ab"}}
    cut_checkpoint(folder.checkpoints, 10)
    assert matching_checkpoint(folder, current) is None
    assert "skipped checkpoint-10: incomplete (no seal; holds only trainer_state.json) — no whole checkpoint: " in (
        capsys.readouterr().out
    )
    assert json.loads((tmp_path / FINGERPRINT_FILE).read_text()) == current


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda folder: (folder / "optimizer.pt").unlink(), "optimizer.pt, listed in its seal, is missing"),
        (lambda folder: truncate(folder / "adapter_model.safetensors", 40), "adapter_model.safetensors is 40 bytes"),
    ],
)
def test_a_sealed_checkpoint_whose_files_changed_since_is_skipped(tmp_path, damage, reason):
    older = trainer_checkpoint(tmp_path, 10)
    damage(trainer_checkpoint(tmp_path, 20))
    choice = choose_checkpoint(tmp_path)
    assert choice.chosen == older
    assert reason in choice.lines()[0]


def test_once_a_run_seals_its_checkpoints_an_unsealed_one_is_cut_whatever_its_files(tmp_path):
    sealed = trainer_checkpoint(tmp_path, 10)
    trainer_checkpoint(tmp_path, 20, sealed=False)  # killed after the trainer's last file, before the seal
    choice = choose_checkpoint(tmp_path)
    assert choice.chosen == sealed
    assert "checkpoint-20: incomplete (no seal; its save did not finish)" in choice.lines()[0]


def truncate(path: Path, size: int) -> None:
    with path.open("r+b") as file:
        file.truncate(size)


def test_a_checkpoint_from_before_seals_counts_when_its_files_check_out_whole(tmp_path):
    whole = trainer_checkpoint(tmp_path, 10, sealed=False)
    choice = choose_checkpoint(tmp_path)
    assert choice.chosen == whole
    assert choice.lines() == ["checkpoint-10 has no seal (written before ftc sealed checkpoints); its files check out"]

    for damage, reason in [
        (lambda folder: truncate(folder / "adapter_model.safetensors", 200), "adapter_model.safetensors is cut short"),
        (lambda folder: truncate(folder / "optimizer.pt", 100), "optimizer.pt is cut short"),
        (lambda folder: (folder / "rng_state.pth").unlink(), "no RNG state"),
        (lambda folder: (folder / "adapter_model.safetensors").unlink(), "no model weights"),
    ]:
        folder = trainer_checkpoint(tmp_path / reason, 20, sealed=False)
        damage(folder)
        choice = choose_checkpoint(tmp_path / reason)
        assert choice.chosen is None
        assert reason in choice.lines()[0], choice.lines()


def test_rotation_keeps_the_newest_whole_checkpoints_and_removes_cut_ones(tmp_path):
    for step in (10, 20):
        trainer_checkpoint(tmp_path, step)
    cut_checkpoint(tmp_path, 25)
    trainer_checkpoint(tmp_path, 30)
    rotate_checkpoints(tmp_path, newest=30, keep=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-20", "checkpoint-30"]

    rotate_checkpoints(tmp_path, newest=30, keep=0)  # 0: keep all
    assert len(list(tmp_path.iterdir())) == 2


def test_the_trainer_callback_seals_what_the_trainer_saved_then_rotates(tmp_path):
    trainer_checkpoint(tmp_path, 10)
    saved = trainer_checkpoint(tmp_path, 20, sealed=False)  # as `Trainer._save_checkpoint` leaves it
    args = SimpleNamespace(output_dir=str(tmp_path))
    state = SimpleNamespace(global_step=20, is_world_process_zero=True)
    SealCheckpoints(keep=1).on_save(args, state, control=None)
    seal = json.loads((saved / SEAL_FILE).read_text())
    assert seal["step"] == 20 and seal["files"]["optimizer.pt"] == (saved / "optimizer.pt").stat().st_size
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-20"]
    assert choose_checkpoint(tmp_path).chosen == saved
