"""`er eval --preset leval|lcfo` on local copies in the published formats, and `er eval --by length_bin`."""

from __future__ import annotations

from pathlib import Path

import pytest

from er.evaluation.longbench import EXAM_PROMPT, LIE_PROMPT, lcfo_prompts, leval_prompts
from er.evaluation.report import length_bin
from er.schema import errors
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record

DATA = Path(__file__).resolve().parents[1] / "data"


def docs(name):
    return parse_jsonl((DATA / name).read_bytes())


def test_leval_documents_become_one_prompt_per_instruction_with_l_eval_prompts():
    [doc] = docs("leval_coursera.jsonl")
    items = leval_prompts(doc, 1, "x")
    assert [r["id"] for r in items] == ["leval/coursera/1/0", "leval/coursera/1/1"]
    assert items[0]["prompt"][0]["content"] == EXAM_PROMPT.format(document=doc["input"], instruction=doc["instructions"][0])
    assert items[0]["prompt"][0]["content"].endswith("\nPlease directly give answer without any additional output or explanation\n Answer: ")
    assert (items[1]["gt"], items[1]["evaluation"], items[1]["task"], items[1]["dataset"]) == ("ABC", "exam", "coursera", "leval")
    [doc] = docs("leval_financial_qa.jsonl")
    [item] = leval_prompts(doc, 1, "x")
    # LIE: the reference "A cat was sitting on the mat" has 7 words
    assert item["prompt"][0]["content"] == LIE_PROMPT.format(document=doc["input"], instruction="Where was the cat?", n=7)
    assert "around 7 words. Output: " in item["prompt"][0]["content"]


def predictions(prompt_records, preds):
    out = []
    for r, p in zip(prompt_records, preds):
        out.append(sample_record(r["id"], 0, 1, **{k: v for k, v in r.items() if k != "id"}, id=r["id"], completion=p,
                                 policy={"model": "m", "step": 0}))
    return out


def test_leval_preset_reports_per_task_with_the_spec_worked_numbers(tmp_path):
    rows = []
    rows += predictions(leval_prompts(docs("leval_coursera.jsonl")[0], 1, "x"), ["AB", "AB"])  # 1 and 0.25
    rows += predictions(leval_prompts(docs("leval_financial_qa.jsonl")[0], 1, "x"), ["The cat sat on the mat."])
    summ = docs("leval_news_summ.jsonl")
    rows += predictions(leval_prompts(summ[0], 1, "x") + leval_prompts(summ[1], 2, "x"),
                        ["the company cut costs and sold assets", "a review"])
    proc = run_er("eval", "--preset", "leval", input=jsonl(rows), check=True)
    reports = {r["task"]: r for r in parse_jsonl(proc.stdout)}
    assert set(reports) == {"coursera", "financial_qa", "news_summ"}
    assert reports["coursera"]["exact_match"] == pytest.approx((1 + 0.25) / 2)
    assert reports["financial_qa"]["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert reports["news_summ"]["leval_score"] == pytest.approx(0.5, abs=1e-6)
    assert all(r["dataset"] == "leval" and r["metric"] == "leval" and errors(r, "report") == [] for r in reports.values())
    assert b"L-Eval LLM-judged row" in proc.stderr and b"5 in, 4 evaluated" in proc.stderr


def test_leval_prediction_files_are_scored_as_published():
    path = DATA / "leval_quality.pred.jsonl"
    [r] = parse_jsonl(run_er("eval", "--preset", "leval", str(path), check=True).stdout)
    # quality: the prediction's first A-D letter; "B. because" -> B (hit), "The answer is A" -> A (miss)
    assert (r["task"], r["model"], r["n"], r["exact_match"]) == ("quality", "turbo-16k-0613", 2, 0.5)


def test_a_raw_leval_document_given_to_eval_is_bad_data_with_a_pointer():
    proc = run_er("eval", "--preset", "leval", str(DATA / "leval_coursera.jsonl"))
    assert proc.returncode == 1 and b"er sample --dataset FILE --preset leval" in proc.stderr


def test_sample_reads_the_leval_and_lcfo_files_through_the_preset(tiny_model):
    proc = run_er("sample", "-m", tiny_model, "--backend", "transformers", "--max-tokens", "2", "--temperature", "0",
                  "--dataset", str(DATA / "leval_coursera.jsonl"), "--preset", "leval", check=True)
    rows = parse_jsonl(proc.stdout)
    assert [r["id"] for r in rows] == ["leval/coursera/1/0", "leval/coursera/1/1"]
    assert [r["gt"] for r in rows] == ["AB", "ABC"] and all(r["completion_tokens"] == 2 for r in rows)
    [r] = parse_jsonl(run_er("eval", "--preset", "leval", input=proc.stdout, check=True).stdout)
    assert (r["task"], r["n"]) == ("coursera", 2)
    missing = run_er("sample", "-m", tiny_model, "--dataset", "/nonexistent/leval.jsonl", "--preset", "leval")
    assert missing.returncode == 2 and b"nothing downloads" in missing.stderr


def test_lcfo_documents_become_one_prompt_per_ratio_and_are_scored_per_ratio():
    d1, d2 = docs("lcfo.jsonl")
    items = lcfo_prompts(d1, 1, "x")
    assert [(r["id"], r["ratio"]) for r in items] == [("lcfo/d1/5", 5.0), ("lcfo/d1/10", 10.0), ("lcfo/d1/20", 20.0)]
    assert items[1]["prompt"][0]["content"].endswith("Summarize the text above in about 20 words (10% of its length).")
    items2 = lcfo_prompts(d2, 2, "x")
    # predictions: d1@10% = its reference (20 words, compliance 1.0, ROUGE-L 1), d2@10% = 12 words of source (1.2)
    rows = predictions([items[1]], [items[1]["reference"]])
    rows += predictions(items2, [" ".join(f"tok{i}" for i in range(12))])
    reports = parse_jsonl(run_er("eval", "--preset", "lcfo", "--by", "domain", input=jsonl(rows), check=True).stdout)
    got = {(r["domain"], r["ratio"]): r for r in reports}
    news, sci = got[("news", "10")], got[("science", "10")]
    assert news["length_compliance"] == pytest.approx(1.0) and news["rougeL"] == pytest.approx(1.0)
    assert sci["length_compliance"] == pytest.approx(1.2) and sci["within_band"] == 1.0
    assert sci["rougeL"] == pytest.approx(2 * (10 / 12) * 1.0 / (10 / 12 + 1.0))  # LCS 10 of 12 / 10
    assert all(r["dataset"] == "lcfo" for r in reports)


def test_length_bins_are_powers_of_two():
    assert [length_bin(n) for n in (0, 1, 2, 3, 4, 7, 8, 1000, 1024, 2047)] == [0, 1, 2, 2, 4, 4, 8, 512, 1024, 1024]
    assert length_bin(None) is None and length_bin(-1) is None


def test_eval_by_length_bin_reports_accuracy_against_input_length():
    rows = [sample_record("a", 0, 1, correct=True, prompt_tokens=3), sample_record("b", 0, 1, correct=False, prompt_tokens=2),
            sample_record("c", 0, 1, correct=True, prompt_tokens=600), sample_record("d", 0, 1, correct=True, prompt_tokens=1000),
            sample_record("e", 0, 1, correct=False, prompt_tokens=1024)]
    reports = parse_jsonl(run_er("eval", "--by", "length_bin", input=jsonl(rows), check=True).stdout)
    got = {r["length_bin"]: (r["n"], r["accuracy"]) for r in reports}
    assert got == {2: (2, 0.5), 512: (2, 1.0), 1024: (1, 0.0)}
