"""`math` (math-verify against gold answers in real dataset forms), `length`, and nulls."""

from __future__ import annotations

import time

import pytest

from er.rewards import verify
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


@pytest.mark.parametrize(
    "gold, completion, expected",
    [
        ("72", "so she sold 72 clips. \\boxed{72}", True),  # GSM8K plain number
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "\\boxed{72}", True),  # GSM8K solution text
        ("1,000", "The total is \\boxed{1000}.", True),  # thousands separator in gold
        ("\\frac{3}{4}", "\\boxed{0.75}", True),  # MATH-500 bare LaTeX
        ("\\frac{3}{4}", "\\boxed{\\frac{6}{8}}", True),
        ("(1,2]", "\\boxed{(1, 2]}", True),  # interval
        ("(1,2]", "\\boxed{[1, 2]}", False),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\frac{\\pi}{2})}", True),
        ("204", "The answer is $\\boxed{204}$", True),  # AIME integer
        ("204", "The answer is $\\boxed{205}$", False),
        ("72", "I do not know", False),  # no answer at all is wrong, not unknown
    ],
)
def test_gold_forms_of_real_datasets(gold, completion, expected):
    assert verify.check(verify.parse_gold(gold), completion) is expected


def test_unparseable_or_missing_gold_is_null_not_zero():
    assert isinstance(verify.parse_gold(""), verify.Null)
    assert isinstance(verify.parse_gold(None), verify.Null)


def test_a_truncated_completion_is_never_correct():
    assert list(verify.check_group(("4", [("\\boxed{4}", False), ("\\boxed{4}", True)], 5))) == [False, True]


def score(rows, *args):
    return run_er("score", "-r", "math", *args, input=jsonl(rows))


def test_score_math_sets_correct_and_reward_in_a_worker_pool():
    rows = [sample_record("g", 0, 3, completion="\\boxed{4}"), sample_record("g", 1, 3, completion="\\boxed{5}"),
            sample_record("g", 2, 3, completion="\\boxed{4}", finish_reason="length")]
    proc = score(rows, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    out = parse_jsonl(proc.stdout)
    assert [(r["correct"], r["reward"], r["rewards"]) for r in out] == [
        (True, 1.0, {"math": 1.0}), (False, 0.0, {"math": 0.0}), (False, 0.0, {"math": 0.0})]


def test_inline_and_pool_scoring_agree():
    rows = [sample_record(f"g{i}", 0, 1, answer=str(i % 7), completion=f"\\boxed{{{i % 5}}}") for i in range(40)]
    a = parse_jsonl(score(rows, "--workers", "0").stdout)
    b = parse_jsonl(score(rows, "--workers", "2").stdout)
    assert [r["correct"] for r in a] == [r["correct"] for r in b]
    assert sum(r["correct"] for r in a) == sum(1 for i in range(40) if i % 7 == i % 5)


def test_a_row_that_hangs_the_parser_times_out_as_null_and_the_stream_finishes():
    # A huge power tower: sympy tries to evaluate it and never returns in time.
    hostile = "\\boxed{" + "9^{" * 12 + "9" + "}" * 12 + "}"
    rows = [sample_record("a", 0, 1, completion="\\boxed{4}"),
            sample_record("b", 0, 1, answer="9^{9^{9}}", completion=hostile),
            sample_record("c", 0, 1, completion="\\boxed{4}")]
    start = time.monotonic()
    proc = score(rows, "--workers", "1", "--timeout", "1")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    out = parse_jsonl(proc.stdout)
    assert [r["correct"] for r in out][0::2] == [True, True]
    assert elapsed < 30
    if out[1]["correct"] is None:  # the hostile row was cut off: counted, never a silent 0
        assert "null correct" in proc.stderr.decode()
        assert out[1]["reward"] is None


def test_missing_answer_is_a_data_error_with_the_line():
    rows = [sample_record("a", 0, 1), sample_record("b", 0, 1)]
    del rows[1]["answer"]
    proc = score(rows)
    assert proc.returncode == 1 and "<stdin>:2: missing field 'answer'" in proc.stderr.decode()


def test_missing_completion_and_wrong_types_are_data_errors():
    rows = [sample_record("a", 0, 1, completion=42)]
    proc = score(rows)
    assert proc.returncode == 1 and "<stdin>:1: field 'completion' should be string, got int" in proc.stderr.decode()
    rows = [{"id": "x", "answer": "1"}]
    proc = score(rows)
    assert proc.returncode == 1 and "<stdin>:1: missing field 'completion'" in proc.stderr.decode()


def test_existing_correct_is_reused_without_verifying_but_math_itself_recomputes_it():
    rows = [sample_record("a", 0, 1, completion="\\boxed{5}", correct=True)]
    out = parse_jsonl(run_er("score", "-r", "dler", "--workers", "2", input=jsonl(rows), check=True).stdout)
    assert out[0]["correct"] is True and out[0]["reward"] == 1.0  # reused: the answer is 4, not 5
    out = parse_jsonl(score(rows, "--workers", "2").stdout)
    assert out[0]["correct"] is False and out[0]["reward"] == 0.0  # the verifier decides again


def test_combine_sums_weighted_components_and_product_multiplies():
    rows = [sample_record("a", 0, 1, completion="<think>x</think> \\boxed{4}", completion_tokens=200)]
    out = parse_jsonl(run_er("score", "-r", "math", "-r", "length:scale=0.001,weight=-1", "--workers", "0",
                             input=jsonl(rows), check=True).stdout)
    assert out[0]["rewards"] == {"math": 1.0, "length": pytest.approx(0.2)}
    assert out[0]["reward"] == pytest.approx(0.8)
    out = parse_jsonl(run_er("score", "-r", "math", "-r", "format", "--combine", "product", "--workers", "0",
                             input=jsonl(rows), check=True).stdout)
    assert out[0]["reward"] == 1.0


def test_the_same_reward_twice_keeps_both_components():
    rows = [sample_record("a", 0, 1, completion_tokens=10)]
    out = parse_jsonl(run_er("score", "-r", "length", "-r", "length:unit=words", input=jsonl(rows), check=True).stdout)
    assert set(out[0]["rewards"]) == {"length", "length#2"}


def test_length_counts_tokens_words_or_chars():
    from er.rewards.correctness import Length

    r = {"completion": "two words", "completion_tokens": 3}
    assert [Length()(([r]))[0], Length(unit="words")([r])[0], Length(unit="chars")([r])[0]] == [3, 2, 9]


def test_a_judging_reward_sets_correct_for_the_rewards_that_need_it():
    # `tail` checks TAIL answers exactly; with it in the run, dler reads its verdict, not math-verify's.
    rows = [sample_record("g", 0, 2, task="compare", answer=">", completion="<think>x</think> \\boxed{>}",
                          completion_tokens=10),
            sample_record("g", 1, 2, task="compare", answer=">", completion="<think>x</think> \\boxed{<}",
                          completion_tokens=10)]
    out = parse_jsonl(run_er("score", "-r", "tail:weight=0", "-r", "dler:L_T=100", input=jsonl(rows), check=True).stdout)
    assert [(r["correct"], r["rewards"], r["reward"]) for r in out] == [
        (True, {"tail": 1.0, "dler": 1.0}, 1.0), (False, {"tail": 0.0, "dler": 0.0}, 0.0)]
    out = parse_jsonl(run_er("score", "-r", "tail", input=jsonl(rows), check=True).stdout)
    assert [r["correct"] for r in out] == [True, False]


def test_two_judges_are_a_usage_error():
    from er.errors import UsageError
    from er.scoring import Scorer

    with pytest.raises(UsageError, match="only one reward can judge correctness"):
        Scorer(["tail", "tail:check_trace=true"])
