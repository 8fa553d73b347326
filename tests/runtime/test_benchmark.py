"""`ftc eval` and [eval]: the benchmarks' published layouts read into lm-evaluation-harness, scored with a
stand-in model whose answers the test chooses (so prompt, few-shot choice and accuracy are exact), then the
tiny model through the real engine end to end, BLEU/ROUGE on known texts, and [eval] after training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ftc.benchmarks import BENCHMARKS
from ftc.spec.sections.evaluation import BenchmarkName

pytest.importorskip("lm_eval")

from lm_eval.api.model import LM  # noqa: E402

from ftc.runtime.benchmark.multiple_choice import score_multiple_choice  # noqa: E402
from ftc.runtime.benchmark.predict import text_scores  # noqa: E402

# subject → (the answer key, the letters the stand-in model picks): 3/4, 1/3 and 2/2 right → 6/9 overall
MMLU_KEYS = {
    "astronomy": ("ABCD", "ABCA"),
    "high_school_biology": ("BBD", "BCA"),
    "virology": ("CD", "CD"),
}


class Chooser(LM):
    """lm-eval's model interface, answering each question with the letter the test chose for it."""

    def __init__(self, picks: dict[str, str]) -> None:
        super().__init__()
        self.picks = picks  # question text → the letter to rank first
        self.requests: list[tuple[str, str]] = []

    def loglikelihood(self, requests):
        scores = []
        for request in requests:
            context, continuation = request.args
            self.requests.append((context, continuation))
            question = context.rsplit("\n\n", 1)[-1].split("\n", 1)[0]
            scores.append((0.0 if continuation.strip() == self.picks[question] else -5.0, False))
        return scores

    def loglikelihood_rolling(self, requests):
        raise AssertionError("multiple choice never asks for this")

    def generate_until(self, requests):
        raise AssertionError("multiple choice never asks for this")


def _write(path: Path, rows: list[list[str]], header: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def _question(subject: str, split: str, index: int) -> str:
    return f"{split} question {index} on {subject}?"


def _options(subject: str, index: int) -> list[str]:
    return [f"{subject[:4]}{index}{letter}" for letter in "abcd"]


@pytest.fixture
def mmlu(tmp_path) -> Path:
    for subject, (key, _) in MMLU_KEYS.items():
        dev = [[_question(subject, "dev", i), *_options(subject, i), "DCBAD"[i]] for i in range(5)]
        _write(tmp_path / "dev" / f"{subject}_dev.csv", dev)
        test = [[_question(subject, "test", i), *_options(subject, i), answer] for i, answer in enumerate(key)]
        _write(tmp_path / "test" / f"{subject}_test.csv", test)
    return tmp_path


def _picks() -> dict[str, str]:
    return {
        _question(subject, "test", i): pick for subject, (_, picks) in MMLU_KEYS.items() for i, pick in enumerate(picks)
    }


def test_mmlu_accuracy_is_exact_per_subject_and_overall(mmlu):
    model = Chooser(_picks())
    result = score_multiple_choice(model, "mmlu", mmlu, shots=2, chat_template=False)
    assert {name: (s["correct"], s["questions"]) for name, s in result["subjects"].items()} == {
        "astronomy": (3, 4),
        "high_school_biology": (1, 3),
        "virology": (2, 2),
    }
    assert result["subjects"]["high_school_biology"]["accuracy"] == pytest.approx(1 / 3)
    assert (result["correct"], result["questions"], result["accuracy"]) == (6, 9, pytest.approx(6 / 9))
    assert (result["split"], result["shots"], result["engine"].split()[0]) == ("test", 2, "lm-eval")
    # every question asked once per letter, the letters after a space, as MMLU's own harness scores them
    assert sorted(continuation for _, continuation in model.requests) == sorted([" A", " B", " C", " D"] * 9)


def test_mmlu_prompt_is_description_then_the_first_dev_questions_then_the_question(mmlu):
    model = Chooser(_picks())
    score_multiple_choice(model, "mmlu", mmlu, shots=2, chat_template=False)
    contexts = {context for context, _ in model.requests}
    expected = (
        "The following are multiple choice questions (with answers) about high school biology.\n\n"
        "dev question 0 on high_school_biology?\nA. high0a\nB. high0b\nC. high0c\nD. high0d\nAnswer: D\n\n"
        "dev question 1 on high_school_biology?\nA. high1a\nB. high1b\nC. high1c\nD. high1d\nAnswer: C\n\n"
        "test question 2 on high_school_biology?\nA. high2a\nB. high2b\nC. high2c\nD. high2d\nAnswer:"
    )
    assert expected in contexts
    assert len(contexts) == 9


def test_zero_shots_ask_the_question_alone(mmlu):
    model = Chooser(_picks())
    result = score_multiple_choice(model, "mmlu", mmlu, shots=0, chat_template=False)
    assert result["correct"] == 6
    assert all("dev question" not in context for context, _ in model.requests)


def test_cmmlu_reads_its_header_and_answer_column(tmp_path):
    header = ["", "Question", "A", "B", "C", "D", "Answer"]
    for split, key in (("dev", "AB"), ("test", "CAB")):
        rows = [[str(i), f"{split}问题{i}", "甲", "乙", "丙", "丁", answer] for i, answer in enumerate(key)]
        _write(tmp_path / split / "anatomy.csv", rows, header)
    model = Chooser({"test问题0": "C", "test问题1": "B", "test问题2": "B"})
    result = score_multiple_choice(model, "cmmlu", tmp_path, shots=1, chat_template=False)
    assert (result["subjects"]["anatomy"]["correct"], result["questions"]) == (2, 3)
    assert (
        "以下是关于anatomy的单项选择题，请直接给出正确答案的选项。\n\n"
        "dev问题0\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案： A\n\n"
        "test问题1\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案：" in {context for context, _ in model.requests}
    )


def test_ceval_scores_val_since_its_test_split_has_no_answers(tmp_path):
    header = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
    _write(tmp_path / "dev" / "law_dev.csv", [["0", "dev题", "1", "2", "3", "4", "D", "因为"]], header)
    # as C-Eval publishes them: explanations in dev only, no answers in test
    val = [[str(i), f"val题{i}", "1", "2", "3", "4", "B"] for i in range(4)]
    _write(tmp_path / "val" / "law_val.csv", val, header[:-1])
    _write(tmp_path / "test" / "law_test.csv", [["0", "test题", "1", "2", "3", "4", ""]], header[:-1])
    model = Chooser({f"val题{i}": "B" if i < 3 else "A" for i in range(4)})
    result = score_multiple_choice(model, "ceval", tmp_path, shots=1, chat_template=False)
    assert (result["split"], result["correct"], result["questions"]) == ("val", 3, 4)
    assert not any("test题" in context for context, _ in model.requests)
    assert all("dev题\nA. 1\nB. 2\nC. 3\nD. 4\n答案： D\n\n" in context for context, _ in model.requests)


def test_a_folder_without_the_layout_is_a_user_error(tmp_path):
    from ftc.errors import RuntimeUserError

    with pytest.raises(RuntimeUserError, match=r"test/\*_test.csv"):
        score_multiple_choice(Chooser({}), "mmlu", tmp_path, shots=0, chat_template=False)


def test_the_spec_names_every_benchmark():
    assert set(BenchmarkName.__args__) == set(BENCHMARKS)


def test_identical_predictions_score_100():
    texts = ["the cat sat on the mat today", "今天天气很好，我们去公园散步"]
    assert text_scores(texts, texts) == pytest.approx({"bleu-4": 100, "rouge-1": 100, "rouge-2": 100, "rouge-l": 100})


def test_partial_overlap_scores_what_the_libraries_say():
    import sacrebleu

    scores = text_scores(["the cat sat on the mat"], ["the cat is on the mat"])
    # 5 of 6 words shared each way; bigrams: the cat, on the, the mat of 5 each; the longest common run is 5 words
    assert scores["rouge-1"] == pytest.approx(100 * 5 / 6)
    assert scores["rouge-2"] == pytest.approx(100 * 3 / 5)
    assert scores["rouge-l"] == pytest.approx(100 * 5 / 6)
    assert scores["bleu-4"] == pytest.approx(
        sacrebleu.corpus_bleu(["the cat sat on the mat"], [["the cat is on the mat"]]).score
    )
    assert 0 < scores["bleu-4"] < 100


def test_chinese_replies_are_scored_by_character():
    scores = text_scores(["我们去公园"], ["我们去学校"])
    assert scores["rouge-1"] == pytest.approx(100 * 3 / 5)  # 我 们 去 of 5 characters


@pytest.mark.slow
def test_the_tiny_model_through_the_real_engine_and_predict(mmlu, tiny_model_dir, tmp_path, capsys):
    from ftc.cli import typer_app as app

    records = [{"instruction": f"Add {i} and {i}.", "input": "", "output": str(2 * i)} for i in range(3)]
    predict_file = tmp_path / "held_out.json"
    predict_file.write_text(json.dumps(records), encoding="utf-8")
    out = tmp_path / "results" / "eval.json"
    argv = ["eval", str(tiny_model_dir), "--task", "mmlu", "--data", str(mmlu), "--shots", "1"]
    assert app.run([*argv, "--predict", str(predict_file), "--max-new-tokens", "4", "-o", str(out)]) in (0, None)
    results = json.loads(out.read_text(encoding="utf-8"))
    mmlu_result = results["benchmarks"]["mmlu"]
    assert {name: s["questions"] for name, s in mmlu_result["subjects"].items()} == {
        "astronomy": 4,
        "high_school_biology": 3,
        "virology": 2,
    }
    assert mmlu_result["questions"] == 9 and mmlu_result["chat_template"] is True
    assert sum(s["correct"] for s in mmlu_result["subjects"].values()) == mmlu_result["correct"]
    assert all(0 <= s["accuracy"] <= 1 for s in mmlu_result["subjects"].values())
    predicted = results["predict"]
    assert predicted["records"] == 3 and set(predicted["scores"]) == {"bleu-4", "rouge-1", "rouge-2", "rouge-l"}
    lines = (out.parent / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["0", "2", "4"]
    assert "overall" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_after_training_lands_in_metrics_json(mmlu, tmp_path, train_stage):
    from ftc.quickstart.tiny import write_tiny_alpaca
    from ftc.runs.report import benchmark_lines

    bench = tmp_path / "bench"  # [eval] reads <data_dir>/<task>
    (bench / "mmlu").mkdir(parents=True)
    for split in ("dev", "test"):
        (mmlu / split).rename(bench / "mmlu" / split)
    data = write_tiny_alpaca(tmp_path / "data.json", 64, seed=0)
    sections = {"eval": {"tasks": ["mmlu"], "data_dir": str(bench), "shots": 0}}
    metrics = train_stage(tmp_path / "run", data, "alpaca", sections, max_steps=2)
    result = metrics["benchmarks"]["mmlu"]
    assert (result["questions"], result["shots"], len(result["subjects"])) == (9, 0, 3)
    assert 0 <= result["accuracy"] <= 1
    assert benchmark_lines(metrics["benchmarks"])[0].startswith("mmlu (0-shot, test): accuracy")
