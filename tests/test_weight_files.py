"""Damaged weight files and shard indexes are refused by name before a run folder exists, and whole ones pass."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from ftc.errors import FtcError
from ftc.models.weight_files import check_weight_files, safetensors_problem
from tests.commands import ftc

SPEC = """\
[model]
name_or_path = "model"
template = "llama3"

[data]
cutoff_len = 128

[[data.datasets]]
path = "data/train.json"

[train]
global_batch_size = 8
max_steps = 3

[output]
dir = "runs/checked"
"""


@pytest.fixture
def project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    shutil.copytree(tiny_model_dir, tmp_path / "model")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text('[{"instruction": "hi", "output": "hello"}]\n')
    (tmp_path / "job.toml").write_text(SPEC)
    return tmp_path


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(text)) + text + data


def one_tensor(data_size: int = 16) -> dict:
    return {"w": {"dtype": "F32", "shape": [data_size // 4], "data_offsets": [0, data_size]}}


def truncate(file: Path, keep: float = 0.5) -> None:
    content = file.read_bytes()
    file.write_bytes(content[: int(len(content) * keep)])


def test_a_whole_model_folder_passes(tiny_model_dir):
    check_weight_files(tiny_model_dir, "model.name_or_path")
    assert safetensors_problem(tiny_model_dir / "model.safetensors") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 1 << 40) + b"{}", "no safetensors writer produces"),
        (struct.pack("<Q", 64) + b"{}", "cut short"),
        (struct.pack("<Q", 3) + b"{x}", "not JSON"),
        (safetensors_bytes(one_tensor(16), bytes(8)), "need 16 bytes of data but 8 are there"),
        (safetensors_bytes(one_tensor(16), bytes(24)), "8 bytes follow its last tensor"),
        (safetensors_bytes({"w": {"dtype": "F32", "shape": [4]}}, bytes(16)), "data_offsets"),
    ],
)
def test_each_kind_of_damage_is_named(tmp_path, content, problem):
    file = tmp_path / "model.safetensors"
    file.write_bytes(content)
    assert problem in (safetensors_problem(file) or "")


def test_metadata_and_a_file_of_no_tensors_are_whole(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(safetensors_bytes({"__metadata__": {"format": "pt"}, **one_tensor(8)}, bytes(8)))
    assert safetensors_problem(file) is None
    file.write_bytes(safetensors_bytes({}, b""))
    assert safetensors_problem(file) is None


def test_a_truncated_model_is_refused_at_launch_with_nothing_written(project):
    truncate(project / "model" / "model.safetensors")
    result = ftc("launch", "job.toml", "-H", "cpu", "--dry-run", cwd=project)
    assert result.returncode == 1
    assert "model.name_or_path:" in result.stderr
    assert "model.safetensors is not a valid safetensors file" in result.stderr
    assert "cut short" in result.stderr and "--force-download" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project / "runs").exists()


def test_a_truncated_reward_model_is_refused_at_launch(project, tiny_model_dir):
    shutil.copytree(tiny_model_dir, project / "reward")
    truncate(project / "reward" / "model.safetensors", keep=0.9)
    ppo = SPEC.replace("max_steps = 3", 'max_steps = 3\nstage = "ppo"') + '\n[ppo]\nreward_model = "reward"\n'
    (project / "job.toml").write_text(ppo)
    result = ftc("launch", "job.toml", "-H", "cpu", "--dry-run", cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ppo.reward_model:" in result.stderr and "reward" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project / "runs").exists()


def test_a_damaged_adapter_is_refused_when_the_plan_reads_it(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(safetensors_bytes(one_tensor(16), bytes(4)))
    with pytest.raises(FtcError, match=r"model.adapter: .*adapter_model.safetensors is not a valid") as caught:
        check_weight_files(adapter, "model.adapter")
    assert "hf download" in caught.value.hint


def test_a_shard_index_must_name_shards_the_folder_holds(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(safetensors_bytes(one_tensor(), bytes(16)))
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FtcError) as caught:
        check_weight_files(tmp_path, "model.name_or_path")
    assert "model.safetensors.index.json names 1 shard(s) the folder does not hold" in caught.value.message
    assert "model-00002-of-00002.safetensors" in caught.value.message
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(safetensors_bytes(one_tensor(), bytes(16)))
    check_weight_files(tmp_path, "model.name_or_path")


def test_a_shard_index_that_is_not_json_is_named(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(FtcError, match="model.safetensors.index.json is not a valid shard index"):
        check_weight_files(tmp_path, "model.name_or_path")


def test_a_truncated_torch_zip_is_refused_and_an_old_pickle_is_left_alone(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", b"x" * 1000)
    check_weight_files(tmp_path, "model.name_or_path")
    truncate(tmp_path / "pytorch_model.bin")
    with pytest.raises(FtcError, match="pytorch_model.bin is cut short"):
        check_weight_files(tmp_path, "model.name_or_path")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02legacy pickle")
    check_weight_files(tmp_path, "model.name_or_path")
