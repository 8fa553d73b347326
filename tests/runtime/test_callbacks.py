"""The progress bar's line: the loss and learning rate, and a preference stage's margin beside them."""

from __future__ import annotations

from ftc.runtime.callbacks import TrainingProgress


class RecordingBar:
    def set_postfix(self, shown):
        self.shown = shown


def test_progress_shows_the_margin_where_the_stage_logs_one():
    progress = TrainingProgress()
    progress.bar = RecordingBar()
    progress.on_log(None, None, None, logs={"loss": 0.5, "learning_rate": 1e-3, "rewards/margins": 1.25})
    assert progress.bar.shown == {"loss": "0.5000", "lr": "1.00e-03", "margin": "1.250"}
    progress.on_log(None, None, None, logs={"loss": 0.25, "learning_rate": 1e-3, "margin": -0.5})  # RewardTrainer
    assert progress.bar.shown["margin"] == "-0.500"
    progress.on_log(None, None, None, logs={"loss": 2.0, "learning_rate": 0.0})  # sft: no margin to show
    assert progress.bar.shown == {"loss": "2.0000", "lr": "0.00e+00"}
