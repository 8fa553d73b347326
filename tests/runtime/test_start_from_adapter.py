"""model.adapter: a new run that starts from an earlier run's LoRA — trained further, or merged into the base."""

from __future__ import annotations

import pytest
import tomli_w
import torch

from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.runtime.model.loading import load_model
from ftc.runtime.model.trainable import prepare_trainable
from ftc.spec import SpecError, parse_spec
from ftc.spec.models import Spec
from ftc.spec.resolve import input_paths
from tests.tiny_runs import SHORT, cpu_plan, tiny_spec

IDS = torch.tensor([[5, 17, 42, 99, 7, 13]])


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, tiny_model_dir, run_folder, train_in_process):
    root = tmp_path_factory.mktemp("earlier")
    data = write_tiny_alpaca(root / "data.json", seed=0)
    folder = load_run_folder(run_folder(tiny_spec(root / "run", tiny_model_dir, data, preset=SHORT, max_steps=4)))
    train_in_process(folder.path)
    return folder


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


def adapted_logits(tiny_model_dir, adapter) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter))


def spec_from(earlier, tiny_model_dir, tmp_path, method: str) -> dict:
    data = write_tiny_alpaca(tmp_path / "new-data.json", seed=1)  # new data: a new run, not a resume
    spec = tiny_spec(
        tmp_path / "run", tiny_model_dir, data, preset=SHORT, method=method, max_steps=3, learning_rate=1e-3
    )
    spec["model"]["adapter"] = str(earlier.trained)
    return spec


@pytest.mark.slow
def test_lora_trains_the_earlier_adapter_further(earlier, tiny_model_dir, tmp_path, run_folder, train_in_process):
    spec = spec_from(earlier, tiny_model_dir, tmp_path, "lora")
    model = prepare_trainable(
        load_model(Spec.model_validate(spec).model, cpu_plan(), "lora"), Spec.model_validate(spec), cpu_plan()
    )
    start = adapted_logits(tiny_model_dir, earlier.trained)
    torch.testing.assert_close(logits(model), start)  # the new run starts where the earlier one ended
    assert any(param.requires_grad for name, param in model.named_parameters() if "lora_" in name)

    folder = load_run_folder(run_folder(spec))
    train_in_process(folder.path)
    assert not torch.allclose(adapted_logits(tiny_model_dir, folder.trained), start, atol=1e-4)


def test_full_starts_from_the_base_with_the_adapter_merged(earlier, tiny_model_dir, tmp_path):
    spec = Spec.model_validate(spec_from(earlier, tiny_model_dir, tmp_path, "full"))
    model = prepare_trainable(load_model(spec.model, cpu_plan(), "full"), spec, cpu_plan())
    assert not hasattr(model, "peft_config")
    torch.testing.assert_close(logits(model), adapted_logits(tiny_model_dir, earlier.trained), atol=1e-5, rtol=1e-5)


def test_the_adapter_is_an_input_the_launcher_checks_and_the_lock_hashes(earlier, tiny_model_dir, tmp_path):
    spec = Spec.model_validate(spec_from(earlier, tiny_model_dir, tmp_path, "lora"))
    assert ("model.adapter", str(earlier.trained), None) in input_paths(spec)


def test_rules_for_model_adapter(earlier, tiny_model_dir, tmp_path):
    spec = spec_from(earlier, tiny_model_dir, tmp_path, "lora")
    reward_model = {
        **spec,
        "train": {**spec["train"], "stage": "rm"},
        "data": {**spec["data"], "datasets": [{"path": "pairs.json", "format": "preference"}]},
    }
    pissa = {**spec, "lora": {**spec["lora"], "init": "pissa"}}
    for refused, key in [(reward_model, "model.adapter"), (pissa, "lora.init")]:
        with pytest.raises(SpecError) as caught:
            parse_spec(tomli_w.dumps(refused), "job.toml")
        assert [(d.path, d.code) for d in caught.value.diagnostics] == [(key, "E-CONFLICT")]
