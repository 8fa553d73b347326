"""OFT (train.method = "oft"): peft's rotations on the tiny model, the count the plan makes of them, a run that
trains them alone, and its export merged into the base."""

from __future__ import annotations

import pytest
import torch

from ftc.compiler.architectures import architecture_from_config
from ftc.compiler.feature_notes import oft_blocks
from ftc.compiler.params import oft_parameters
from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.runtime.export import export
from ftc.runtime.model.loading import load_model
from ftc.runtime.model.trainable import prepare_trainable
from ftc.spec.models import ModelSection, OftSection, Spec
from tests.tiny_runs import SHORT, cpu_plan, series, tiny_spec


def oft_spec(run_dir, model_dir, data, oft: dict, **train) -> dict:
    return tiny_spec(run_dir, model_dir, data, preset=SHORT, sections={"lora": None, "oft": oft}, method="oft", **train)


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory):
    return write_tiny_alpaca(tmp_path_factory.mktemp("data") / "tiny.json", n=96)


def trained_values(model) -> dict[str, int]:
    return {name: param.numel() for name, param in model.named_parameters() if param.requires_grad}


# The tiny model's layers read 64 (attention, gate, up) or 128 (down) features.
@pytest.mark.parametrize(
    "oft",
    [
        {},  # block size 32: 64 → 2 blocks, 128 → 4 blocks
        {"block_size": 16},
        {"rank": 4},  # 64 → blocks of 16, 128 → blocks of 32
        {"block_size": 8, "block_share": True, "target": ["q_proj", "down_proj"]},
    ],
)
def test_peft_trains_exactly_the_values_the_plan_counts(tiny_model_dir, alpaca, oft):
    spec = Spec.model_validate(oft_spec(alpaca.parent / "unused", tiny_model_dir, alpaca, oft))
    model = prepare_trainable(load_model(spec.model, cpu_plan(), "oft"), spec, cpu_plan())
    trained = trained_values(model)
    assert trained and all(".oft_R.default.weight" in name for name in trained)
    arch = architecture_from_config(model.config.to_dict())
    assert sum(trained.values()) == oft_parameters(arch, oft_blocks(spec.oft), spec.oft.target)


def test_the_tiny_models_count_by_hand(tiny_model_dir):
    # 2 layers × (q, k, v, o, gate, up: 64 wide → 4 blocks of 16; down: 128 wide → 8 blocks of 16), 16·15/2 each
    from transformers import AutoConfig

    arch = architecture_from_config(AutoConfig.from_pretrained(tiny_model_dir).to_dict())
    assert arch.hidden_size == 64 and arch.intermediate_size == 128 and arch.num_layers == 2
    blocks = oft_blocks(OftSection(block_size=16))
    assert oft_parameters(arch, blocks, "all") == 2 * (6 * 4 + 8) * 120


def test_a_block_size_that_does_not_divide_a_layer_is_refused_not_adjusted(tiny_model_dir):
    model = load_model(ModelSection(name_or_path=str(tiny_model_dir)), cpu_plan(), "oft")
    from ftc.runtime.model.oft import oft_config

    with pytest.raises(RuntimeUserError) as caught:
        oft_config(OftSection(block_size=48), model)  # peft would warn and pick 64
    assert caught.value.message.startswith("oft.block_size = 48 does not divide the input width 64")
    with pytest.raises(RuntimeUserError, match=r"^oft.rank = 3 "):
        oft_config(OftSection(rank=3), model)


def test_the_section_reaches_peft(tiny_model_dir):
    from ftc.runtime.model.oft import oft_config

    model = load_model(ModelSection(name_or_path=str(tiny_model_dir)), cpu_plan(), "oft")
    config = oft_config(OftSection(rank=2, coft=True, eps=1e-3, cayley_neumann=False), model)
    assert (config.r, config.oft_block_size, config.coft, config.eps) == (2, 0, True, 1e-3)
    assert not config.use_cayley_neumann and config.target_modules == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }  # fmt: skip


@pytest.fixture(scope="module")
def oft_run(tmp_path_factory, tiny_model_dir, alpaca, run_folder, train_in_process):
    root = tmp_path_factory.mktemp("oft-run")
    spec = oft_spec(root / "run", tiny_model_dir, alpaca, {"block_size": 16}, max_steps=12, learning_rate=2e-2)
    folder = load_run_folder(run_folder(spec))
    train_in_process(folder.path)
    return folder


@pytest.mark.slow
def test_an_oft_run_lowers_the_loss_and_changes_only_the_rotations(oft_run, tiny_model_dir):
    import json

    from peft import PeftModel, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    metrics = json.loads((oft_run.path / "metrics.json").read_text(encoding="utf-8"))
    losses = series(metrics, "loss")
    assert losses[-1] < 0.85 * losses[0], losses

    saved = load_file(oft_run.trained / "adapter_model.safetensors")
    assert saved and all(".oft_R.weight" in name for name in saved)  # the adapter alone, no base weight

    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), oft_run.trained)
    after = trained.state_dict()
    # the same adapter as every run starts it: rotations at zero, the identity
    fresh = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trained.peft_config["default"])
    fresh = fresh.state_dict()
    changed = {name for name in fresh if not torch.equal(fresh[name], after[name])}
    rotations = {name for name in fresh if ".oft_R." in name}
    assert len(rotations) == 2 * 7 and changed == rotations  # every rotation moved; no base weight did


@pytest.mark.slow
def test_an_oft_run_exports_merged_into_the_base(oft_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged_dir = export(oft_run.path, dtype="fp32")
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), oft_run.trained).eval()
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-3)
    before, after = base.state_dict(), merged.state_dict()
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert moved == {name for name in before if name.endswith("_proj.weight")}  # each adapted weight, rotated
