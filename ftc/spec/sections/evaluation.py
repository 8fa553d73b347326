"""[eval]: multiple-choice benchmarks the runtime scores the trained model on once training ends."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ftc.spec.diagnostics import Code
from ftc.spec.sections.base import Section, rule_error

# The names of ftc.benchmarks.BENCHMARKS (tests/spec check the two agree).
BenchmarkName = Literal["mmlu", "cmmlu", "ceval"]


class EvalSection(Section):
    tasks: list[BenchmarkName] = Field(
        default=[],
        description="Benchmarks to score the trained model on after training, from local files in their published "
        "layouts (mmlu: dev/<subject>_dev.csv + test/<subject>_test.csv; cmmlu: dev|test/<subject>.csv; ceval: "
        "dev|val/<subject>_<split>.csv, scored on val); results land in metrics.json and the report. "
        "`ftc eval` runs the same on any run or model.",
    )
    data_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Folder holding one folder per task, named as the task (<data_dir>/mmlu/dev/...); relative "
        "to the spec. Read locally: nothing is fetched from a hub.",
    )
    shots: int = Field(
        default=5, ge=0, le=20, description="Solved examples from the dev split put before each question (few-shot)."
    )
    chat_template: bool = Field(
        default=True,
        description="Ask in the run's chat template, the answer letter scored as the assistant's reply (as "
        "LLaMA-Factory's evaluator does: a chat-tuned model answers there); false: the plain prompt of the "
        "benchmarks' original harnesses, ' A'..' D' scored after 'Answer:'.",
    )

    @model_validator(mode="after")
    def _data_for_tasks(self) -> EvalSection:
        if self.tasks and self.data_dir is None:
            raise rule_error(
                "eval.tasks are read from local files, but eval.data_dir is not set",
                "set eval.data_dir to a folder holding one folder per task (e.g. bench/ with bench/mmlu/dev/...)",
                at="eval.data_dir",
                code=Code.MISSING,
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise rule_error(
                "eval.tasks names a task twice", "list each task once", at="eval.tasks", code=Code.CONFLICT
            )
        return self
