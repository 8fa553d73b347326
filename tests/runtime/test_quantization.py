"""qlora's quantization backends at run time: hqq trains a LoRA on the CPU; eetq and checkpoints quantized by
GPTQ, AWQ or AQLM need CUDA and their package, which is said before anything loads."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ftc.compiler.plan import Decision
from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.runtime.model.loading import load_model
from ftc.runtime.model.quantization import quantized_layers
from ftc.runtime.model.trainable import prepare_trainable
from ftc.spec.models import Spec
from tests.tiny_runs import SHORT, cpu_plan, tiny_spec


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory):
    return write_tiny_alpaca(tmp_path_factory.mktemp("data") / "tiny.json", n=96)


def quantized_plan(backend: str, bits: int, group_size: int | None = None, precision: str = "fp32"):
    def fixed(value):
        return Decision(value, "fixed by the test")

    return replace(
        cpu_plan(precision),
        quantization_bits=fixed(bits),
        quantization_backend=fixed(backend),
        quantization_group_size=fixed(group_size),
    )


def hqq_spec(tmp_path, model_dir, data, bits: int, **train) -> dict:
    spec = tiny_spec(tmp_path / "run", model_dir, data, preset=SHORT, method="qlora", **train)
    return {**spec, "quantization": {"backend": "hqq", "bits": bits, "group_size": 32}}


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_hqq_holds_every_linear_but_the_head_in_its_bits(tiny_model_dir, alpaca, tmp_path, bits):
    from hqq.core.quantize import HQQLinear

    spec = Spec.model_validate(hqq_spec(tmp_path, tiny_model_dir, alpaca, bits))
    model = load_model(spec.model, quantized_plan("hqq", bits, 32), "qlora")
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, HQQLinear) and q_proj.meta["nbits"] == bits and q_proj.meta["group_size"] == 32
    assert quantized_layers(model) == 7 * len(model.model.layers)  # q, k, v, o, gate, up, down
    assert type(model.lm_head).__name__ == "Linear"


def test_hqq_lora_changes_only_the_adapter(tiny_model_dir, alpaca, tmp_path):
    import torch

    spec = Spec.model_validate(hqq_spec(tmp_path, tiny_model_dir, alpaca, 4))
    plan = quantized_plan("hqq", 4, 32)
    model = prepare_trainable(load_model(spec.model, plan, "qlora"), spec, plan)
    # The frozen state: the parameters and HQQ's packed weights with their scales and zeros.
    frozen = {name: tensor.clone() for name, tensor in model.state_dict().items() if "lora_" not in name}
    adapter = {name: param.detach().clone() for name, param in model.named_parameters() if param.requires_grad}
    assert adapter and all("lora_" in name for name in adapter)

    optimizer = torch.optim.AdamW([param for param in model.parameters() if param.requires_grad], lr=1e-2)
    tokens = torch.randint(0, model.config.vocab_size, (4, 24), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(8):
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())

    assert losses[-1] < 0.9 * losses[0], losses
    after = model.state_dict()
    assert all(torch.equal(after[name], tensor) for name, tensor in frozen.items())
    changed = {
        name for name, param in model.named_parameters() if name in adapter and not torch.equal(param, adapter[name])
    }
    assert changed == {name for name in adapter if "lora_B" in name} | {name for name in adapter if "lora_A" in name}


@pytest.mark.slow  # a whole run through trl's trainer
def test_an_hqq_qlora_run_learns_and_saves_its_adapter(tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process):
    spec = hqq_spec(tmp_path, tiny_model_dir, alpaca, 4, max_steps=15)
    folder = load_run_folder(run_folder(spec, quantized_plan("hqq", 4, 32)))
    metrics = train_in_process(folder.path)
    assert metrics["last_loss"] < 0.85 * metrics["first_loss"], metrics["log"]
    saved = json.loads((folder.path / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert {"q_proj", "down_proj"} <= set(saved["target_modules"])


def test_eetq_on_the_cpu_is_refused_with_what_it_needs(tiny_model_dir, alpaca, tmp_path):
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, method="qlora")
    spec = Spec.model_validate({**spec, "quantization": {"backend": "eetq"}})
    with pytest.raises(RuntimeUserError) as caught:
        load_model(spec.model, quantized_plan("eetq", 8), "qlora")
    assert "needs CUDA and package kernels" in caught.value.message  # transformers 5 fetches EETQ's kernels so
    assert "planned for cpu" in caught.value.message and "ftc[eetq]" in caught.value.hint


@pytest.mark.parametrize(
    "quantization_config, package",
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}, "gptqmodel with optimum"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, "gptqmodel"),
        (
            {"quant_method": "aqlm", "in_group_size": 8, "out_group_size": 1, "num_codebooks": 1,
             "nbits_per_codebook": 16},
            "aqlm",
        ),
    ],
)  # fmt: skip
def test_a_published_quantized_checkpoint_needs_cuda_and_its_package(
    tiny_model_dir, alpaca, tmp_path, quantization_config, package
):
    import shutil

    quantized = tmp_path / "quantized"
    shutil.copytree(tiny_model_dir, quantized)
    config = json.loads((quantized / "config.json").read_text(encoding="utf-8"))
    (quantized / "config.json").write_text(json.dumps({**config, "quantization_config": quantization_config}))
    spec = Spec.model_validate(tiny_spec(tmp_path / "run", quantized, alpaca, preset=SHORT, method="qlora"))
    bits = quantization_config.get("bits", 2)
    with pytest.raises(RuntimeUserError) as caught:
        load_model(spec.model, quantized_plan(quantization_config["quant_method"], bits), "qlora")
    assert f"needs CUDA and package {package}" in caught.value.message
