"""`python -m tests.compiler.fsdp_wrapping MODEL_DIR FSDP_JSON`: wrap the model as the runtime would; print it.

Run in a process of its own: it opens a one-rank gloo group and accelerate's global state, which
must not leak into the test session. The config goes through TrainingArguments (as the runtime
passes it) into accelerate's FSDP2 plugin, and accelerate shards the real model on the CPU.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main(model_dir: str, config_path: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    import torch
    import torch.distributed as dist
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from ftc.runtime.plan_check import fsdp_mismatch

    dist.init_process_group("gloo")
    config = json.loads(open(config_path, encoding="utf-8").read())
    precision = config.pop("mixed_precision")
    args = TrainingArguments(
        output_dir=os.path.dirname(config_path), use_cpu=True, report_to="none", bf16=precision == "bf16",
        fsdp=True, fsdp_config=config,
    )  # fmt: skip
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args)
    # What ftc.runtime.distributed.process_group.use_fsdp_on_cpu does, for one rank.
    state = trainer.accelerator.state
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    if precision != "no":
        state.fsdp_plugin.set_mixed_precision(precision)
    state.distributed_type = DistributedType.FSDP
    model, _ = trainer.accelerator.prepare(trainer.model, torch.optim.AdamW(trainer.model.parameters()))
    # The unit of each layer: the layer itself, or (accelerate 1.16 and newer, under activation checkpointing)
    # the checkpoint wrapper around it. The runtime's own check must agree with what is found here.
    wrappers = {
        id(m._checkpoint_wrapped_module): m for m in model.modules() if hasattr(m, "_checkpoint_wrapped_module")
    }
    layers = [m for m in model.modules() if any(cls.__name__ == "LlamaDecoderLayer" for cls in type(m).__mro__)]
    units = [layer if isinstance(layer, FSDPModule) else wrappers.get(id(layer), layer) for layer in layers]
    group = units[0]._get_fsdp_state()._fsdp_param_group
    mismatch = fsdp_mismatch(model, config["transformer_layer_cls_to_wrap"])
    print(
        json.dumps(
            {
                "root_sharded": isinstance(model, FSDPModule),
                "layers_sharded": [isinstance(unit, FSDPModule) for unit in units],
                "runtime_check": None if mismatch is None else f"{mismatch.decision}: {mismatch.found}",
                "checkpointed_layers": sum("Checkpoint" in type(module).__name__ for module in model.modules()),
                "all_parameters_dtensors": all(type(p).__name__ == "DTensor" for p in model.parameters()),
                "offload": isinstance(group.offload_policy, CPUOffloadPolicy),
                "param_dtype": str(group.mp_policy.param_dtype),
                "state_dict_type": str(state.fsdp_plugin.state_dict_type),
            }
        )
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
