"""Worked numbers of spec length-control-and-eval.md §5 (emotion wheel), §6 (Ruler), §9a (L-Eval), §9b (LCFO)."""

from __future__ import annotations

import pytest

from er.evaluation import text as T
from er.evaluation.lengthcontrol import (
    EmotionReport,
    LCFOReport,
    LEvalReport,
    RulerReport,
    judge_win_rate,
    length_compliance,
    leval_prepare,
    repetition_4,
)
from er.evaluation.report import Keys
from er.schema import errors
from tests.helpers import jsonl, parse_jsonl, run_er


def words(n: int) -> str:
    return " ".join(["w"] * n)


def test_ruler_pm_fm_of_the_worked_example_and_window_edges():
    # spec §6 (e): (80, 75) PM+FM, (80, 95) FM, (150, 171) FM, (300, 320) PM+FM, (10, 0) none, (>800, 801) both
    rows = [(80, 75), (80, 95), (150, 171), (300, 320), (10, 0), (">800", 801)]
    report = RulerReport(Keys())
    for target, w in rows:
        report.add("tlg.jsonl", {"target_length": target, "completion": words(w)})
    out = {r["level"]: r for r in report.reports()}
    assert out["all"]["n"] == 6
    assert out["all"]["pm"] == pytest.approx(0.5, abs=1e-9)          # 50.00
    assert out["all"]["fm"] == pytest.approx(5 / 6, abs=1e-9)        # 83.33
    assert (out["level0"]["n"], out["level0"]["pm"], out["level0"]["fm"]) == (3, pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert out["level0"]["pm_80"] == 0.5 and out["level0"]["fm_80"] == 1.0 and out["level0"]["pm_10"] == 0.0
    assert (out["level1"]["pm"], out["level1"]["fm"]) == (0.5, 1.0)
    assert out["level2"]["pm_gt800"] == 1.0
    assert all(errors(dict(r, model="-", dataset="tlg"), "report") == [] for r in out.values())


def test_ruler_reads_ruler_files_and_counts_regex_words():
    text = "It's a well-known fact: e-mail costs $3.50 per user."  # W = 13
    report = RulerReport(Keys())
    report.add("p.jsonl", {"TargetLength": 10, "output": text})
    [level0, _all] = report.reports()
    assert level0["pm"] == 1.0  # 13 in (0, 20]


def test_ruler_via_the_command_line():
    rows = [{"target_length": 80, "completion": words(75)}, {"target_length": 80, "completion": words(95)}]
    out = parse_jsonl(run_er("eval", "--metric", "ruler", input=jsonl(rows), check=True).stdout)
    assert [(r["level"], r["pm"], r["fm"]) for r in out] == [("level0", 0.5, 1.0), ("all", 0.5, 1.0)]


def test_emotion_wheel_dataset_f_from_averaged_precision_and_recall():
    # spec §5 (e) on the shipped toy wheel: sample 1 prec 2/3 rec 1; sample 2 prec 1 rec 0.5; sample 3 prec 0 rec 0
    report = EmotionReport(Keys())
    report.add("x", {"answer": "happiness, worried", "completion": "<answer>joyful, nervous, angry, excited</answer>"})
    report.add("x", {"answer": ["happiness", "angry"], "completion": "<answer>joyful</answer>"})
    report.add("x", {"answer": "sad", "completion": "<answer>joyful</answer>"})
    [r] = report.reports()
    assert r["ew_precision"] == pytest.approx(5 / 9, abs=1e-4)      # 0.5556
    assert r["ew_recall"] == pytest.approx(0.5, abs=1e-9)
    assert r["ew_f"] == pytest.approx(0.5263, abs=1e-4)


def test_leval_exact_match_with_partial_credit_float_and_substring():
    assert T.exam_em("AB", "ABC") == 0.25
    assert T.exam_em("ABC", "ABC") == 1.0
    assert T.exam_em("AD", "ABC") == 0.0
    assert T.exam_em("18", "18.0") == 1.0
    assert T.exam_em("The role of art in society.", "The role of art in society") == 1.0


def test_leval_token_f1_and_rouge_of_the_worked_example():
    assert T.token_f1("The cat sat on the mat.", "A cat was sitting on the mat") == pytest.approx(2 / 3, abs=1e-4)
    r = T.rouge("the company cut costs and sold assets", ["the company sold assets and cut its costs sharply"])
    assert r["rouge1"] == pytest.approx(0.875, abs=1e-6)
    assert r["rouge2"] == pytest.approx(2 / 7, abs=1e-6)
    assert r["rougeL"] == pytest.approx(0.5, abs=1e-6)
    assert T.lcs_length(["the", "company", "cut", "costs", "and", "sold", "assets"],
                        ["the", "company", "sold", "assets", "and", "cut", "its", "costs", "sharply"]) == 4


def test_leval_report_gives_the_geometric_mean_of_averaged_rouge():
    report = LEvalReport(Keys())
    row = {"query": "summarise", "gt": "the company sold assets and cut its costs sharply",
           "turbo_pred": "the company cut costs and sold assets", "evaluation": "rouge", "task": "news_summ"}
    report.add("news_summ.jsonl", row)
    assert report.add("news_summ.jsonl", dict(row, evaluation="LLM")) is not None  # dropped, counted
    [r] = report.reports()
    assert (r["model"], r["task"], r["n"]) == ("turbo", "news_summ", 1)
    assert r["leval_score"] == pytest.approx(0.5, abs=1e-6)  # (0.875 · 0.2857 · 0.5)^(1/3)


def test_leval_multiple_choice_and_gsm_preprocessing():
    assert leval_prepare("quality", "The answer is (B) because", "B") == ("B", "B")
    assert leval_prepare("coursera", "A, C\nQuestion 2: D", "AC the rest") == ("AC", "AC")
    assert leval_prepare("gsm100", "We add. The answer is 1,234.", "1234")[0] == "1234"
    report = LEvalReport(Keys())
    report.add("x", {"gt": "AC", "m_pred": "A", "evaluation": "exam", "task": "coursera"})
    report.add("x", {"gt": "B", "m_pred": "B", "evaluation": "exam", "task": "quality"})
    assert [r["exact_match"] for r in report.reports()] == [0.25, 1.0]


def test_leval_judge_win_rate_counts_ties_as_half():
    verdicts = ["[[A]]", "[[A]]", "[[A]]", "[[B]]", "[[C]]", "[[C]]", "garbage"]
    result = judge_win_rate(verdicts)
    assert result["win_rate"] == pytest.approx(4 / 6) and result["errors"] == 1


def test_lcfo_length_compliance_and_repetition():
    assert length_compliance(430, 5000, 0.10) == pytest.approx(0.86)
    # 100 4-grams, 80 distinct: 103 words cycling with period 80 (4-gram i equals 4-gram i + 80)
    seq = [f"t{i % 80}" for i in range(103)]
    assert len(seq) - 3 == 100
    assert repetition_4(seq) == pytest.approx(100 / 80 - 1)
    report = LCFOReport(Keys())
    report.add("lcfo.jsonl", {"source_text": words(5000), "ratio": 10, "completion": words(430),
                              "reference": words(500)})
    report.add("lcfo.jsonl", {"source_text": words(5000), "ratio": "10%", "completion": words(700)})
    [r] = report.reports()
    assert r["ratio"] == "10" and r["n"] == 2
    assert r["length_compliance"] == pytest.approx((0.86 + 1.4) / 2)
    assert r["within_band"] == 0.5
    assert r["rougeL"] == pytest.approx(2 * (430 / 430) * (430 / 500) / (1 + 430 / 500))
    assert r["source_overlap"] == pytest.approx(1.0)  # every n-gram of "w w w ..." is in the source
