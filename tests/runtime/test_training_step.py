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
