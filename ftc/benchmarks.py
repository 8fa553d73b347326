"""Multiple-choice benchmarks `ftc eval --task` and `[eval] tasks` read from local files: one record per
benchmark, holding its published file layout, its columns and the prompt it is asked in.

The runtime (ftc.runtime.benchmark) turns a record into lm-evaluation-harness task configurations over the
files of a folder; nothing else branches on a benchmark's name. Records only, importing nothing: the spec
layer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Benchmark:
    name: str  # the --task / [eval] tasks value
    summary: str
    # Where a subject's questions are, under the data folder: "{split}" and "{subject}" are filled in.
    file_pattern: str
    scored_split: str  # the split whose answers count
    scored_split_why: str
    # None: the file has a header row naming its columns; else the columns of a header-less file, in order
    columns: tuple[str, ...] | None
    question: str  # the column holding the question
    answer: str  # the column holding the answer letter
    answer_cue: str  # what ends each question in the prompt, before the answer letter
    # The line that opens each prompt, in the benchmark's language; {subject} is the subject's name, spaced.
    description: str


def _registry(*benchmarks: Benchmark) -> dict[str, Benchmark]:
    return {benchmark.name: benchmark for benchmark in benchmarks}


# Few-shot examples always come from the dev split, in file order, as the benchmarks' own harnesses take them.
FEWSHOT_SPLIT = "dev"

BENCHMARKS: dict[str, Benchmark] = _registry(
    Benchmark(
        "mmlu",
        "MMLU, as its original release lays it out (data/dev, data/test; 57 subjects, English)",
        file_pattern="{split}/{subject}_{split}.csv",
        scored_split="test",
        scored_split_why="the test split holds the answers the benchmark reports on",
        columns=("question", "A", "B", "C", "D", "answer"),
        question="question",
        answer="answer",
        answer_cue="Answer:",
        description="The following are multiple choice questions (with answers) about {subject}.\n\n",
    ),
    Benchmark(
        "cmmlu",
        "CMMLU, as its release lays it out (dev/<subject>.csv, test/<subject>.csv with a header; 67 subjects, Chinese)",
        file_pattern="{split}/{subject}.csv",
        scored_split="test",
        scored_split_why="the test split holds the answers the benchmark reports on",
        columns=None,
        question="Question",
        answer="Answer",
        answer_cue="答案：",
        description="以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n",
    ),
    Benchmark(
        "ceval",
        "C-Eval, as its release lays it out (dev, val and test folders of <subject>_<split>.csv with a header; "
        "52 subjects, Chinese)",
        file_pattern="{split}/{subject}_{split}.csv",
        scored_split="val",
        scored_split_why="C-Eval's public test split carries no answers; its val split does",
        columns=None,
        question="question",
        answer="answer",
        answer_cue="答案：",
        description="以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n",
    ),
)
