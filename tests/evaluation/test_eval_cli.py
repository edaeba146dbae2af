"""`er eval` end to end: reports per (model, dataset), hand-computed figures, schema, Markdown, plot, errors."""

from __future__ import annotations

import struct

import orjson
import pytest

from er.evaluation.report import Keys, ReasoningReport
from er.schema import errors
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def scored(group, idx, size, correct, tokens, model="m", **extra):
    return sample_record(group, idx, size, correct=correct, completion_tokens=tokens,
                         rewards={"math": None if correct is None else float(correct)},
                         reward=None if correct is None else float(correct), policy={"model": model, "step": 0},
                         **extra)


def rows_two_problems(model="m"):
    # problem p1: 4 samples, 2 correct (tokens 100, 300 correct; 200, 400 wrong, the 400 truncated)
    # problem p2: 4 samples, 1 correct (tokens 50), one null (tokens 60), 2 wrong (70, 80)
    return [
        scored("p1", 0, 4, True, 100, model), scored("p1", 1, 4, False, 200, model),
        scored("p1", 2, 4, True, 300, model), scored("p1", 3, 4, False, 400, model, finish_reason="length"),
        scored("p2", 0, 4, True, 50, model), scored("p2", 1, 4, None, 60, model),
        scored("p2", 2, 4, False, 70, model), scored("p2", 3, 4, False, 80, model),
    ]


def test_report_holds_hand_computed_accuracy_pass_at_k_lengths_and_budgets(tmp_path):
    path = tmp_path / "math500.jsonl"
    path.write_bytes(jsonl(rows_two_problems()))
    proc = run_er("eval", str(path), "--budgets", "100,300", check=True)
    [r] = parse_jsonl(proc.stdout)
    assert (r["model"], r["dataset"], r["n"], r["problems"]) == ("m", "math500", 8, 2)
    assert (r["judged"], r["null"], r["correct"]) == (7, 1, 3)
    assert r["accuracy"] == pytest.approx(3 / 7)
    # p1: n=4, c=2; p2: n=3 judged, c=1 -> k in (1, 2, 3)
    assert r["samples_per_problem"] == 3
    assert r["pass@1"] == pytest.approx((2 / 4 + 1 / 3) / 2)
    assert r["pass@2"] == pytest.approx(((1 - 1 / 6) + (1 - 1 / 3)) / 2)  # 1-C(2,2)/C(4,2); 1-C(2,2)/C(3,2)
    assert r["pass@3"] == pytest.approx((1.0 + 1.0) / 2)
    assert "pass@4" not in r
    assert r["mean_tokens"] == pytest.approx(1260 / 8)
    assert r["median_tokens"] == pytest.approx(90.0)  # (80 + 100) / 2
    assert r["p90_tokens"] == pytest.approx(300 + 0.3 * 100)  # rank 6.3 of sorted [50..400]
    assert r["mean_tokens_correct"] == pytest.approx(450 / 3)
    assert r["mean_tokens_incorrect"] == pytest.approx(750 / 4)
    assert r["truncated"] == 1 and r["truncation_rate"] == pytest.approx(1 / 8)
    assert r["tokens_per_correct"] == pytest.approx(1260 / 3)
    assert r["accuracy_per_1k_tokens"] == pytest.approx(1000 * (3 / 7) / (1260 / 8))
    assert r["accuracy_at_100"] == pytest.approx(2 / 7)   # 100 and 50
    assert r["accuracy_at_300"] == pytest.approx(3 / 7)
    assert r["verifier"].startswith("math (math-verify ")
    assert r["timeouts"] is None
    assert errors(r, "report") == []
    assert b"8 in, 8 evaluated, 0 rejected" in proc.stderr


def test_one_report_per_model_and_dataset_and_by_field():
    rows = rows_two_problems("a") + [dict(r, dataset="gsm8k") for r in rows_two_problems("b")]
    for i, r in enumerate(rows):
        r["difficulty"] = i % 2
    proc = run_er("eval", "--by", "difficulty", input=jsonl(rows), check=True)
    reports = parse_jsonl(proc.stdout)
    assert [(r["model"], r["dataset"], r["difficulty"], r["n"]) for r in reports] == [
        ("a", "stdin", 0, 4), ("a", "stdin", 1, 4), ("b", "gsm8k", 0, 4), ("b", "gsm8k", 1, 4)]
    assert all(errors(r, "report") == [] for r in reports)


def test_maj_at_k_votes_on_boxed_answers():
    rows = []
    for i, (ans, ok) in enumerate([("4", True), ("5", False), ("5", False), ("4", True)]):
        rows.append(scored("p1", i, 4, ok, 10, completion=f"so \\boxed{{{ans}}}"))
    for i, (ans, ok) in enumerate([("7", True), ("7", True), ("8", False), ("9", False)]):
        rows.append(scored("p2", i, 4, ok, 10, completion=f"so \\boxed{{{ans}}}"))
    [r] = parse_jsonl(run_er("eval", "--maj", "1,3,4", "--extract", "boxed", input=jsonl(rows), check=True).stdout)
    assert r["maj@1"] == pytest.approx(1.0)   # first votes: 4 (correct), 7 (correct)
    assert r["maj@3"] == pytest.approx(0.5)   # p1: 5 twice -> wrong; p2: 7 twice -> right
    assert r["maj@4"] == pytest.approx(1.0)   # p1: 4 and 5 tie, 4 seen first -> right; p2: 7 -> right
    assert r["extract"] == "boxed"


def test_maj_with_math_verify_treats_equal_values_as_one_answer():
    rows = [scored("p", i, 3, ok, 10, completion=c) for i, (c, ok) in enumerate(
        [("\\boxed{\\frac{1}{2}}", True), ("\\boxed{0.5}", True), ("\\boxed{3}", False)])]
    [r] = parse_jsonl(run_er("eval", "--maj", "3", "--extract", "math-verify", input=jsonl(rows), check=True).stdout)
    assert r["maj@3"] == 1.0


def test_compare_prints_relative_length_change_accuracy_delta_and_aes(tmp_path):
    base = [scored(f"q{i}", 0, 1, i < 5, 1000) for i in range(10)]          # acc 0.5, 1000 tokens
    short = [scored(f"q{i}", 0, 1, i < 6, 500) for i in range(10)]          # acc 0.6, 500 tokens
    (tmp_path / "base.jsonl").write_bytes(jsonl(base))
    (tmp_path / "short.jsonl").write_bytes(jsonl(short))
    proc = run_er("eval", "--compare", str(tmp_path / "short.jsonl"), str(tmp_path / "base.jsonl"),
                  "--baseline", str(tmp_path / "base.jsonl"), check=True)
    s, b = parse_jsonl(proc.stdout)
    assert (s["run"], b["run"], s["baseline"]) == ("short", "base", "base")
    assert s["length_change"] == pytest.approx(-0.5)
    assert s["accuracy_delta"] == pytest.approx(0.1)
    assert s["aes"] == pytest.approx(0.5 + 3 * 0.2)  # ΔL = 0.5, ΔA = +0.1/0.5
    assert s["headline"] == "-50.0% length, +10.00 accuracy"
    assert b["length_change"] == 0 and b["aes"] == 0
    assert errors(s, "report") == []
    bad = run_er("eval", "--compare", str(tmp_path / "short.jsonl"), "--baseline", "nope")
    assert bad.returncode == 2 and b"matches no model or run" in bad.stderr


def test_compare_within_one_stream_uses_models_and_defaults_to_the_first():
    rows = [scored(f"q{i}", 0, 1, True, 100, model="big") for i in range(2)] + \
           [scored(f"q{i}", 0, 1, i == 0, 25, model="small") for i in range(2)]
    big, small = parse_jsonl(run_er("eval", "--compare", input=jsonl(rows), check=True).stdout)
    assert big["baseline"] == "big" and small["baseline"] == "big" and small["headline"] == "-75.0% length, -50.00 accuracy"
    assert small["aes"] == pytest.approx(0.75 - 5 * 0.5)


def test_markdown_table_renders_with_one_row_per_report():
    md = run_er("eval", "--format", "md", "--budgets", "100", input=jsonl(rows_two_problems()), check=True).stdout.decode()
    lines = md.strip().splitlines()
    assert lines[0].startswith("| model | dataset | n |") and "accuracy %" in lines[0] and "pass@1 %" in lines[0]
    assert set(lines[1].replace(" ", "")) <= set("|-:")
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert "| m | stdin | 8 | 2 | 42.86 |" in lines[2]
    assert len(lines) == 3


def test_plot_is_a_png_of_the_expected_size(tmp_path):
    png = tmp_path / "plot.png"
    run_er("eval", "--plot", str(png), "--budgets", "100,200,400", input=jsonl(rows_two_problems()), check=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1650, 560)


def test_plot_format_follows_the_extension_and_the_legend_holds_short_names_and_each_auc(tmp_path):
    rows = rows_two_problems("/runs/a/ckpt/step-20") + rows_two_problems("/models/base-1.5B")[:6]
    svg = tmp_path / "plot.svg"
    reports = parse_jsonl(run_er("eval", "--plot", str(svg), input=jsonl(rows), check=True).stdout)
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text
    assert "ckpt/step-20 vs base-1.5B on stdin (n = 8 / 6 rows)" in text   # the title
    assert "/runs/a" not in text and "/models" not in text                    # short names only
    for r in reports:
        assert f"(AUC {r['oaa_auc']:.3f})" in text
    assert "% of the series&#39; rows" in text or "% of the series' rows" in text  # 8 vs 6 rows: shares
    pdf = tmp_path / "plot.pdf"
    run_er("eval", "--plot", str(pdf), input=jsonl(rows), check=True)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    bad = run_er("eval", "--plot", str(tmp_path / "plot.jpg"), input=jsonl(rows))
    assert bad.returncode == 2 and b".png, .svg or .pdf" in bad.stderr and bad.stdout == b""


def test_empty_input_gives_an_empty_report_and_exit_0():
    proc = run_er("eval", input=b"")
    assert proc.returncode == 0 and proc.stdout == b""
    md = run_er("eval", "--format", "md", input=b"")
    assert md.returncode == 0 and md.stdout == b"_no records_\n"


def test_unscored_rows_say_score_first_or_pass_reward():
    row = sample_record("p", 0, 1)
    del row["answer"]
    proc = run_er("eval", input=jsonl([row]))
    assert proc.returncode == 1
    msg = proc.stderr.decode()
    assert "<stdin>:1:" in msg and "er score --reward math" in msg and "--reward math" in msg and "'answer'" in msg


def test_reward_scores_sample_rows_inline():
    rows = [sample_record("p", 0, 2, completion="\\boxed{4}"), sample_record("p", 1, 2, completion="\\boxed{5}")]
    [r] = parse_jsonl(run_er("eval", "--reward", "math", input=jsonl(rows), check=True).stdout)
    assert r["accuracy"] == 0.5 and r["timeouts"] == 0 and r["verifier"].startswith("math (math-verify")


def test_bad_rows_are_rejected_and_counted(tmp_path):
    rows = rows_two_problems()
    rows[2]["correct"] = "yes"
    proc = run_er("eval", "--rejects", str(tmp_path / "rej.jsonl"), input=jsonl(rows), check=True)
    [r] = parse_jsonl(proc.stdout)
    assert r["n"] == 7 and b"8 in, 7 evaluated, 1 rejected" in proc.stderr
    assert orjson.loads((tmp_path / "rej.jsonl").read_bytes())["line"] == 3


def test_preset_names_the_dataset_and_its_recommended_n():
    proc = run_er("eval", "--preset", "aime24", input=jsonl(rows_two_problems()), check=True)
    [r] = parse_jsonl(proc.stdout)
    assert r["dataset"] == "aime24" and r["recommended_n"] == 64
    assert b"below aime24's recommended n=64" in proc.stderr


def test_reports_stream_in_memory_without_keeping_records():
    report = ReasoningReport(Keys())
    for r in rows_two_problems():
        report.add("x.jsonl", r)
    group = next(iter(report.groups.values()))
    assert len(group.tokens) == 8 and group.tokens.itemsize == 8 and len(group.problems) == 2


def think_rows(**sampling):
    # (correct, completion_tokens, think_tokens or absent)
    spec = [(True, 100, 60), (True, 50, None), (False, 200, 150), (None, 30, 10), (True, 400, 300)]
    rows = []
    for i, (c, t, th) in enumerate(spec):
        extra = {} if th is None else {"think_tokens": th}
        r = scored(f"q{i}", 0, 1, c, t, **extra)
        if sampling:
            r["sampling"] = dict(r["sampling"], **sampling)
        else:
            del r["sampling"]
        rows.append(r)
    return rows


def test_think_answer_tokens_and_oaa_auc_against_hand_computed_values():
    [r] = parse_jsonl(run_er("eval", "--auc-tokens", "256", input=jsonl(think_rows()), check=True).stdout)
    assert r["mean_think_tokens"] == pytest.approx((60 + 50 + 150 + 10 + 300) / 5)  # no think_tokens: all think
    assert r["mean_answer_tokens"] == pytest.approx((40 + 0 + 50 + 20 + 100) / 5)
    assert r["auc_tokens"] == 256
    assert r["oaa_auc"] == pytest.approx((196 / 256 + 206 / 256 + 0) / 4)  # 4 judged rows
    assert errors(r, "report") == []
    # default horizon: the sampling cap ...
    [r] = parse_jsonl(run_er("eval", input=jsonl(think_rows(max_tokens=512)), check=True).stdout)
    assert r["auc_tokens"] == 512 and r["oaa_auc"] == pytest.approx((452 + 462 + 212) / 512 / 4)
    # ... else the longest completion
    [r] = parse_jsonl(run_er("eval", input=jsonl(think_rows()), check=True).stdout)
    assert r["auc_tokens"] == 400 and r["oaa_auc"] == pytest.approx((340 + 350 + 100) / 400 / 4)


def test_think_tokens_above_completion_tokens_is_bad_data_with_its_line():
    rows = think_rows()
    rows[2]["think_tokens"] = 999
    proc = run_er("eval", input=jsonl(rows))
    assert proc.returncode == 1 and b":3:" in proc.stderr and b"think_tokens" in proc.stderr


def test_overthinking_score_normalises_tokens_over_the_reports_of_a_dataset():
    rows = ([scored(f"q{i}", 0, 1, i < 1, 100, model="a") for i in range(2)] +    # acc 0.5, 100 tok
            [scored(f"q{i}", 0, 1, True, 200, model="c") for i in range(2)] +     # acc 1.0, 200 tok
            [scored(f"q{i}", 0, 1, i < 1, 300, model="b") for i in range(2)])     # acc 0.5, 300 tok
    a, c, b = parse_jsonl(run_er("eval", input=jsonl(rows), check=True).stdout)
    assert a["overthinking_score"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert c["overthinking_score"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert b["overthinking_score"] == 0.0
    [alone] = parse_jsonl(run_er("eval", input=jsonl(rows[:2]), check=True).stdout)
    assert alone["overthinking_score"] == 0.5


def test_aes_weights_flag_sets_alpha_beta_gamma_and_implies_compare(tmp_path):
    (tmp_path / "base.jsonl").write_bytes(jsonl([scored(f"q{i}", 0, 1, i < 5, 1000) for i in range(10)]))
    (tmp_path / "short.jsonl").write_bytes(jsonl([scored(f"q{i}", 0, 1, i < 6, 500) for i in range(10)]))
    b, s = parse_jsonl(run_er("eval", str(tmp_path / "base.jsonl"), str(tmp_path / "short.jsonl"),
                              "--aes-weights", "2,1,1", check=True).stdout)
    assert s["baseline"] == "base" and s["aes"] == pytest.approx(2 * 0.5 + 1 * 0.2)
    bad = run_er("eval", str(tmp_path / "base.jsonl"), "--aes-weights", "1,x,2")
    assert bad.returncode == 2 and b"--aes-weights" in bad.stderr
