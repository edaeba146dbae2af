"""`format-length` (code): label-free format + length surrogate, worked numbers of spec §3(e)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from er.advantages.base import Batch
from er.advantages.group import Grpo
from er.rewards import REWARDS
from er.rewards.format_length import FormatLength, final_answer, length_curve, parseable
from tests.helpers import sample_record
from tests.rewards.er_bin import er_score

GOOD = "so the answer is \\boxed{42}"  # parseable answer, no <think> span: f_soft = 0
BAD = "I am not sure"  # no answer: f_ans = 0


def rec(text, n):
    return {"completion": text, "completion_tokens": n}


@pytest.mark.parametrize("n, r_len, good, bad", [
    (300, 0.3525, 0.8525, 0.0),
    (768, 0.75, 1.25, 0.0),
    (1536, 1.0, 1.5, 0.0),
    (2304, 0.5, 1.0, 0.0),
    (3072, -1.0, -0.5, -1.0),
])
def test_worked_table_of_the_spec(n, r_len, good, bad):
    r = FormatLength()
    x = n / 3072
    exact = 1 - (1 - x / 0.5) ** 2 if x <= 0.5 else 1 - 2 * ((x - 0.5) / 0.5) ** 2
    assert length_curve(x, 0.5) == pytest.approx(exact, abs=1e-12)
    assert length_curve(x, 0.5) == pytest.approx(r_len, abs=5e-5)
    assert r.score_row(rec(GOOD, n)) == pytest.approx(0.5 + exact, abs=1e-6)
    assert r.score_row(rec(GOOD, n)) == pytest.approx(good, abs=5e-5)
    assert r.score_row(rec(BAD, n)) == pytest.approx(min(0.0, exact), abs=1e-6)
    assert r.score_row(rec(BAD, n)) == pytest.approx(bad, abs=5e-5)


def test_zero_crossing_at_2622_tokens():
    x0 = 0.5 + 0.5 / math.sqrt(2)
    assert x0 == pytest.approx(0.8536, abs=5e-5) and int(x0 * 3072) == 2622
    assert length_curve(2622 / 3072, 0.5) > 0 > length_curve(2623 / 3072, 0.5)


def test_group_of_four_and_population_grpo_advantages_of_the_spec():
    rows = [rec(GOOD, 900), rec(GOOD, 1500), rec(GOOD, 2800), rec(BAD, 1200)]
    rewards = FormatLength()(rows)
    assert rewards == pytest.approx([1.3286, 1.4995, 0.1456, 0.0], abs=5e-5)
    adv = Grpo(std="population", eps=0.0)(Batch(np.array(rewards), np.zeros(4), np.zeros(4), np.array([0])))
    assert adv == pytest.approx([0.8665, 1.1196, -0.8852, -1.1009], abs=5e-5)


def test_soft_think_format_adds_half_a_point_and_can_be_switched_off():
    text = "<think>\nwork\n</think> \\boxed{7}"
    assert FormatLength().score_row(rec(text, 1536)) == 2.0
    assert FormatLength(soft_format=False).score_row(rec(text, 1536)) == 1.5


@pytest.mark.parametrize("text, answer", [
    ("<think>a</think><answer>so \\boxed{1} then \\boxed{\\frac{1}{2}}</answer>", "\\frac{1}{2}"),
    ("<answer>it is \\(x+1\\) or \\(x+2\\)</answer>", "x+2"),
    ("<answer> $3$ </answer>", "3"),
    ("\\boxed{9} <think>x</think> result \\boxed{10}", "10"),
    ("\\boxed{9} <think>x</think> no box after", ""),
    ("no answer at all", ""),
])
def test_final_answer_parsing_follows_the_code(text, answer):
    assert final_answer(text) == answer


def test_parseability_uses_math_verify_not_eval():
    assert parseable("42") and parseable("\\frac{1}{2}") and parseable("x=3")
    assert not parseable("") and not parseable("\\frac{1}{") and not parseable("}{")
    assert FormatLength().score_row(rec("\\boxed{\\frac{1}{}", 1536)) == 0.0


@pytest.mark.parametrize("kwargs", [{"L_max": 0}, {"p": 0.0}, {"p": 1.0}, {"timeout": 0}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        FormatLength(**kwargs)


def test_registered_as_code_and_needs_no_gold():
    cls = REWARDS.get("format-length")
    assert cls.provenance == "code" and not cls.needs_correct and "answer" not in cls.fields


@settings(max_examples=60)
@given(n=st.integers(0, 3072), text=st.sampled_from([GOOD, BAD, "<think>t</think>\\boxed{5}", "\\boxed{}"]))
def test_property_finite_and_bounded_within_the_cap(n, text):
    v = FormatLength().score_row(rec(text, n))
    assert math.isfinite(v) and -1.0 <= v <= 2.0
    if final_answer(text) in ("", "I am not sure"):
        assert v <= 0.0


def test_cli_scores_without_gold_and_missing_tokens_is_a_located_error(tmp_path):
    rows = [sample_record("g", 0, 1, completion=GOOD, completion_tokens=768, answer=None)]
    rc, out, err = er_score(tmp_path, rows, "-r", "format-length")
    assert rc == 0, err
    assert out[0]["reward"] == pytest.approx(1.25, abs=1e-9) and out[0]["correct"] is None
    bad = [{"completion": GOOD, "completion_tokens": 10}, {"completion": GOOD}]
    rc, _, err = er_score(tmp_path, bad, "-r", "format-length")
    assert rc == 1 and ":2:" in err and "completion_tokens" in err


@given(st.lists(st.sampled_from(["<think>", "</think>", "a", "\n", "<", "think>"]), max_size=12).map("".join))
def test_property_think_span_check_equals_the_code_regex(text):
    import re

    from er.rewards.format_length import has_think_span

    assert has_think_span(text) == bool(re.search(r"<think>.*?</think>", text, re.S))
