"""The prepared model against the plan: each promise broken on purpose is refused, naming the decision,
what the libraries did and their versions. (Two-process runs that break FSDP and ZeRO for real are in
test_distributed.py.)"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from types import SimpleNamespace

import pytest
import torch

from ftc.compiler.plan import Decision
from ftc.errors import RuntimeUserError
from ftc.runtime.plan_check import check_prepared, fsdp_mismatch
from tests.tiny_runs import cpu_plan


class TinyBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)


class TinyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([TinyBlock(), TinyBlock()])


def trainer_of(model: torch.nn.Module, wrapped: object | None = None, engine: object | None = None):
    return SimpleNamespace(model=model, model_wrapped=wrapped or model, deepspeed=engine)


def plan_with(**decisions: object):
    return dataclasses.replace(
        cpu_plan(), **{key: Decision(value, "set by the test") for key, value in decisions.items()}
    )


def refusal(trainer, plan, method: str = "full", layers: list[str] | None = None) -> str:
    with pytest.raises(RuntimeUserError) as refused:
        check_prepared(trainer, plan, method, "sft", layers)
    return refused.value.message


def test_a_model_prepared_as_planned_passes():
    check_prepared(trainer_of(TinyModel()), cpu_plan(), "full", "sft")


def test_a_trainable_weight_in_another_dtype_than_planned_is_refused_by_name():
    model = TinyModel()
    model.layers[1].proj.weight.data = model.layers[1].proj.weight.data.to(torch.bfloat16)
    message = refusal(trainer_of(model), cpu_plan(), "full")
    assert "trainable parameters in fp32" in message
    assert "layers.1.proj.weight (bfloat16)" in message
    assert f"accelerate {metadata.version('accelerate')}" in message  # the versions that did it


def test_frozen_weights_may_be_held_in_any_dtype():
    model = TinyModel()
    model.layers[0].proj.weight.requires_grad_(False)
    model.layers[0].proj.weight.data = model.layers[0].proj.weight.data.to(torch.bfloat16)
    check_prepared(trainer_of(model), cpu_plan(), "full", "sft")


def test_a_quantized_plan_whose_model_holds_no_quantized_layer_is_refused():
    message = refusal(trainer_of(TinyModel()), plan_with(quantization_bits=4), "qlora")
    assert "4-bit quantized base weights" in message and "no layer is quantized" in message


class ZeroEngine:
    def __init__(self, stage: int, offloads: bool = False) -> None:
        self.stage, self.offloads = stage, offloads

    def zero_optimization_stage(self) -> int:
        return self.stage

    def zero_offload_optimizer(self) -> bool:
        return self.offloads


def test_a_zero_stage_other_than_planned_is_refused():
    plan = plan_with(strategy="zero3", world_size=2)
    message = refusal(trainer_of(TinyModel(), engine=ZeroEngine(2)), plan)
    assert "DeepSpeed ZeRO stage 3" in message and "DeepSpeed reports ZeRO stage 2" in message
    check_prepared(trainer_of(TinyModel(), engine=ZeroEngine(3)), plan, "full", "sft")


def test_an_offload_deepspeed_did_not_do_is_refused():
    plan = plan_with(strategy="zero3", world_size=2, offload="optimizer")
    message = refusal(trainer_of(TinyModel(), engine=ZeroEngine(3, offloads=False)), plan)
    assert "with optimizer offloaded" in message and "does not offload" in message


def test_a_zero_plan_without_an_engine_is_refused():
    message = refusal(trainer_of(TinyModel()), plan_with(strategy="zero2", world_size=2))
    assert "holds no DeepSpeed engine" in message


def test_ddp_on_several_processes_must_have_wrapped_the_model():
    message = refusal(trainer_of(TinyModel()), plan_with(strategy="ddp", world_size=2))
    assert "ddp" in message and "the model is a TinyModel" in message


def test_an_fsdp_plan_whose_model_was_not_sharded_is_refused():
    message = refusal(trainer_of(TinyModel()), plan_with(strategy="fsdp", world_size=2), layers=["TinyBlock"])
    assert "every TinyBlock its own FSDP unit" in message and "not sharded" in message


def test_fsdp_units_are_the_layers_or_the_checkpoint_wrappers_around_them(monkeypatch):
    """accelerate 1.15 shards each layer and checkpoints around it; 1.16 shards the checkpoint wrapper itself."""
    import torch.distributed.fsdp

    class Sharded(torch.nn.Module):  # stands in for the classes fully_shard makes: nothing is really sharded
        pass

    monkeypatch.setattr(torch.distributed.fsdp, "FSDPModule", Sharded)

    class ShardedBlock(TinyBlock, Sharded):
        pass

    class ShardedWrapper(Sharded):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._checkpoint_wrapped_module = inner

    class CheckpointWrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._checkpoint_wrapped_module = inner

    class ShardedModel(Sharded):
        def __init__(self, layers: list[torch.nn.Module]) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)

    newer = ShardedModel([ShardedWrapper(TinyBlock()), ShardedWrapper(TinyBlock())])
    assert fsdp_mismatch(newer, ["TinyBlock"]) is None
    older = ShardedModel([CheckpointWrapper(ShardedBlock()), CheckpointWrapper(ShardedBlock())])
    assert fsdp_mismatch(older, ["TinyBlock"]) is None
    one_left_whole = ShardedModel([ShardedWrapper(TinyBlock()), CheckpointWrapper(TinyBlock())])
    assert fsdp_mismatch(one_left_whole, ["TinyBlock"]).found == "1 of 2 layers are FSDP units"
