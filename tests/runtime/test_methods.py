"""Training methods: which weights train under freeze, qlora on bitsandbytes' CPU kernels, LoRA's variants."""

from __future__ import annotations

import math

import pytest

from ftc.errors import RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca
from ftc.runs.folder import load_run_folder
from ftc.runtime.model.loading import load_model
from ftc.runtime.model.lora import attach_lora_plus, lora_config
from ftc.runtime.model.trainable import prepare_trainable
from ftc.spec.models import LoraSection, Spec
from tests.tiny_runs import SHORT, cpu_plan, tiny_spec


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory):
    return write_tiny_alpaca(tmp_path_factory.mktemp("data") / "tiny.json", n=96)


def spec_for(model_dir, data, method, **sections) -> Spec:
    return Spec.model_validate(
        tiny_spec(data.parent / "unused", model_dir, data, preset=SHORT, sections=sections, method=method)
    )


def trainable_names(model) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


# -- freeze -------------------------------------------------------------------------------------------
def test_freeze_trains_the_last_layers_only(tiny_model_dir, alpaca):
    spec = spec_for(tiny_model_dir, alpaca, "freeze", freeze={"trainable_layers": 1})
    model = prepare_trainable(load_model(spec.model, cpu_plan(), "freeze"), spec, cpu_plan())
    names = trainable_names(model)
    assert names and all(name.startswith("model.layers.1.") for name in names)
    assert len(names) == len(list(model.model.layers[1].parameters()))


def test_freeze_can_name_modules_in_the_layers_and_outside_them(tiny_model_dir, alpaca):
    freeze = {"trainable_layers": 2, "trainable_modules": ["mlp"], "extra_modules": ["norm", "embed_tokens"]}
    spec = spec_for(tiny_model_dir, alpaca, "freeze", freeze=freeze)
    names = trainable_names(prepare_trainable(load_model(spec.model, cpu_plan(), "freeze"), spec, cpu_plan()))
    expected = {f"model.layers.{i}.mlp.{p}_proj.weight" for i in (0, 1) for p in ("gate", "up", "down")}
    assert names == expected | {"model.norm.weight", "model.embed_tokens.weight"}


def test_freeze_refuses_a_module_the_model_does_not_have(tiny_model_dir, alpaca):
    spec = spec_for(tiny_model_dir, alpaca, "freeze", freeze={"extra_modules": ["wte"]})
    with pytest.raises(RuntimeUserError) as caught:
        prepare_trainable(load_model(spec.model, cpu_plan(), "freeze"), spec, cpu_plan())
    assert "freeze.extra_modules" in caught.value.message and "'wte'" in caught.value.message
    assert "embed_tokens" in caught.value.hint


def test_freeze_holds_the_trained_layers_in_fp32_under_a_half_precision_plan(tiny_model_dir, alpaca):
    import torch

    spec = spec_for(tiny_model_dir, alpaca, "freeze", freeze={"trainable_layers": 1})
    model = prepare_trainable(load_model(spec.model, cpu_plan("bf16"), "freeze"), spec, cpu_plan("bf16"))
    dtypes = {name: param.dtype for name, param in model.named_parameters()}
    assert {dtypes[name] for name in trainable_names(model)} == {torch.float32}
    assert dtypes["model.layers.0.mlp.up_proj.weight"] == torch.bfloat16


@pytest.mark.slow
def test_a_freeze_run_changes_the_trained_layers_and_nothing_else(
    tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process
):
    import torch
    from transformers import AutoModelForCausalLM

    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, method="freeze", max_steps=4)
    folder = load_run_folder(run_folder({**spec, "freeze": {"trainable_layers": 1}}))
    train_in_process(folder.path)
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(folder.trained).state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {name for name in before if name.startswith("model.layers.1.")}


# -- qlora: bitsandbytes runs 4- and 8-bit layers on the CPU -------------------------------------------
@pytest.mark.slow  # bitsandbytes' import and CPU kernels
@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_quantizes_the_linear_layers_and_the_loss_falls(
    tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process, bits
):
    from dataclasses import replace

    import bitsandbytes as bnb

    from ftc.compiler.plan import Decision

    plan = replace(cpu_plan(), quantization_bits=Decision(bits, "fixed by the test"))
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, method="qlora", max_steps=15)
    folder = load_run_folder(run_folder({**spec, "quantization": {"bits": bits}}, plan))
    layer = {4: bnb.nn.Linear4bit, 8: bnb.nn.Linear8bitLt}[bits]
    model = load_model(folder.spec.model, plan, "qlora")
    assert isinstance(model.model.layers[0].self_attn.q_proj, layer)
    del model

    metrics = train_in_process(folder.path)
    assert metrics["last_loss"] < 0.85 * metrics["first_loss"], metrics["log"]
    assert (folder.path / "adapter" / "adapter_model.safetensors").is_file()


def test_qlora_without_bits_in_the_plan_is_a_user_error(tiny_model_dir, alpaca):
    spec = spec_for(tiny_model_dir, alpaca, "qlora")
    with pytest.raises(RuntimeUserError, match="quantization_bits = None"):
        load_model(spec.model, cpu_plan(), "qlora")


# -- LoRA variants ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_model(tiny_model_dir):
    from ftc.spec.models import ModelSection

    return load_model(ModelSection(name_or_path=str(tiny_model_dir)), cpu_plan(), "lora")


def test_dora_and_rslora_reach_peft(base_model):
    config = lora_config(LoraSection(rank=4, alpha=8, use_dora=True, use_rslora=True), base_model)
    assert config.use_dora and config.use_rslora


def test_rslora_scales_by_the_square_root_of_the_rank(tiny_model_dir, alpaca):
    spec = spec_for(tiny_model_dir, alpaca, "lora", lora={"rank": 16, "alpha": 8, "use_rslora": True})
    model = prepare_trainable(load_model(spec.model, cpu_plan(), "lora"), spec, cpu_plan())
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q_proj.scaling["default"] == pytest.approx(8 / math.sqrt(16))


@pytest.mark.slow
def test_dora_trains_a_magnitude_per_output_row(tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process):
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, max_steps=8)
    folder = load_run_folder(run_folder({**spec, "lora": {"rank": 8, "alpha": 16, "use_dora": True}}))
    model = prepare_trainable(load_model(folder.spec.model, cpu_plan(), "lora"), folder.spec, cpu_plan())
    magnitudes = [name for name in trainable_names(model) if "lora_magnitude_vector" in name]
    assert len(magnitudes) == 2 * 7  # every adapted linear of both layers
    metrics = train_in_process(folder.path)
    assert metrics["last_loss"] < metrics["first_loss"], metrics["log"]


@pytest.mark.slow
def test_lora_plus_gives_the_b_matrices_a_larger_learning_rate(tmp_path, tiny_model_dir, alpaca):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from ftc.runtime.data.packing import PaddingCollator

    spec = spec_for(tiny_model_dir, alpaca, "lora", lora={"rank": 4, "alpha": 8, "plus_lr_ratio": 16.0})
    model = prepare_trainable(load_model(spec.model, cpu_plan(), "lora"), spec, cpu_plan())
    rows = [{"input_ids": list(range(5, 5 + n)), "labels": list(range(5, 5 + n))} for n in (6, 9, 12, 7)]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path), learning_rate=1e-3, max_steps=2, per_device_train_batch_size=2,
            use_cpu=True, report_to="none", remove_unused_columns=False, lr_scheduler_type="constant",
        ),
        train_dataset=Dataset.from_list(rows),
        data_collator=PaddingCollator(pad_token_id=0),
    )  # fmt: skip
    attach_lora_plus(trainer, spec)
    assert learning_rates(trainer.optimizer, model) == {"lora_A": {1e-3}, "lora_B": {16e-3}}
    trainer.train()  # the trainer keeps our optimizer, and its schedule scales both groups alike
    assert learning_rates(trainer.optimizer, model) == {"lora_A": {1e-3}, "lora_B": {16e-3}}
    assert trainer.state.global_step == 2


def learning_rates(optimizer, model) -> dict[str, set[float]]:
    """The learning rates the optimizer gives the A and the B matrices (the magnitudes, if any, go with B)."""
    names = {id(param): name for name, param in model.named_parameters()}
    rates: dict[str, set[float]] = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            rates.setdefault("lora_A" if "lora_A" in names[id(param)] else "lora_B", set()).add(group["lr"])
    return rates


@pytest.mark.slow
def test_pissa_starts_where_the_base_model_is_and_saves_an_adapter_for_the_original_base(
    tmp_path, tiny_model_dir, alpaca, run_folder, train_in_process
):
    import json

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    spec = tiny_spec(tmp_path / "run", tiny_model_dir, alpaca, preset=SHORT, max_steps=8)
    folder = load_run_folder(run_folder({**spec, "lora": {"rank": 4, "alpha": 4, "init": "pissa"}}))
    ids = torch.tensor([[5, 17, 42, 99, 7, 13]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    pissa = prepare_trainable(load_model(folder.spec.model, cpu_plan(), "lora"), folder.spec, cpu_plan()).eval()
    q_proj = pissa.base_model.model.model.layers[0].self_attn.q_proj
    assert not torch.equal(q_proj.base_layer.weight, base.model.layers[0].self_attn.q_proj.weight)  # a residual now
    with torch.no_grad():  # principal part in the adapter + residual in the base = the model as it was
        torch.testing.assert_close(pissa(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-4, rtol=1e-4)

    train_in_process(folder.path)
    saved = json.loads((folder.trained / "adapter_config.json").read_text())
    assert saved["r"] == 8  # peft's conversion: a rank-2r LoRA on the untouched base
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), folder.trained).eval()
    with torch.no_grad():
        assert not torch.allclose(tuned(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-3)


@pytest.mark.slow  # bitsandbytes' CPU kernels and an SVD per layer
def test_loftq_starts_a_4bit_model_closer_to_the_full_precision_one(tiny_model_dir, alpaca):
    from dataclasses import replace

    import torch
    from transformers import AutoModelForCausalLM

    from ftc.compiler.plan import Decision

    plan = replace(cpu_plan(), quantization_bits=Decision(4, "fixed by the test"))
    ids = torch.tensor([[5, 17, 42, 99, 7, 13, 64, 3]])
    with torch.no_grad():
        reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(input_ids=ids).logits

    def distance(init: str) -> float:
        torch.manual_seed(0)
        spec = spec_for(tiny_model_dir, alpaca, "qlora", quantization={"bits": 4}, lora={"rank": 8, "init": init})
        model = prepare_trainable(load_model(spec.model, plan, "qlora"), spec, plan).eval()
        with torch.no_grad():
            return (model(input_ids=ids).logits.float() - reference).abs().mean().item()

    plain, loftq = distance("default"), distance("loftq")
    # The default adapter starts at zero: the model is the quantized base, error and all. LoftQ's adapter
    # holds the low-rank part of that error, so the start is nearer the full-precision model.
    print(f"mean |logit error| at the start: default init {plain:.4f}, loftq {loftq:.4f}")
    assert loftq < 0.9 * plain, (loftq, plain)


def test_loftq_needs_a_4bit_plan(tiny_model_dir, alpaca):
    from dataclasses import replace

    from ftc.compiler.plan import Decision

    plan = replace(cpu_plan(), quantization_bits=Decision(8, "fixed by the test"))
    spec = spec_for(tiny_model_dir, alpaca, "qlora", lora={"init": "loftq"})
    with pytest.raises(RuntimeUserError, match="needs a 4-bit base"):
        prepare_trainable(load_model(spec.model, plan, "qlora"), spec, plan)
