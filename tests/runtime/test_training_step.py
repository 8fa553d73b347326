"""What ftc changes in the trainer's step: the flops total comes from one parameter count, not one a micro-step."""

from __future__ import annotations

import torch

from ftc.runtime.training import count_parameters_once


class Counting:
    """A trainer whose flop count walks the parameters, as transformers' does, and says how often it did."""

    def __init__(self) -> None:
        self.walks = 0

    def floating_point_ops(self, inputs):
        self.walks += 1
        return 6 * inputs["input_ids"].numel() * 1000


def test_the_flops_total_is_the_same_from_one_parameter_count():
    trainer = Counting()
    batches = [{"input_ids": torch.zeros(4, length)} for length in (16, 40, 9)]
    expected = [trainer.floating_point_ops(batch) for batch in batches]
    trainer.walks = 0
    count_parameters_once(trainer)
    assert [trainer.floating_point_ops(batch) for batch in batches] == expected
    assert trainer.walks == 1


def test_inputs_that_are_no_batch_of_ids_are_counted_as_the_trainer_counts_them():
    class Prompts:
        def floating_point_ops(self, inputs):
            return 0 if isinstance(inputs, list) else 1

    trainer = Prompts()
    count_parameters_once(trainer)
    assert trainer.floating_point_ops([{"prompt": "Say hi."}]) == 0
