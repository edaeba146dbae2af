"""`target-length` (code): Ruler PM/FM windows (lo, hi] on the \\w+ word count, worked numbers of spec §6(e)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.ruler import FM_WINDOWS, PM_WINDOWS, TargetLength, count_words, ruler_target


def words(n):
    return " ".join(["w"] * n)


def rec(target, n):
    return {"completion": words(n), "target_length": target}


def test_word_count_splits_on_punctuation_like_nltk_w_plus():
    assert count_words("It's a well-known fact: e-mail costs $3.50 per user.") == 13
    assert count_words("") == 0 and count_words("  ...  ") == 0


def test_worked_samples_give_pm_50_and_fm_83_33():
    samples = [(80, 75), (80, 95), (150, 171), (300, 320), (10, 0), (">800", 801)]
    pm = [TargetLength(match="pm").score_row(rec(t, n)) for t, n in samples]
    fm = [TargetLength(match="fm").score_row(rec(t, n)) for t, n in samples]
    assert pm == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0] and fm == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert 100 * sum(pm) / 6 == pytest.approx(50.0, abs=1e-6)
    assert 100 * sum(fm) / 6 == pytest.approx(83.333333, abs=1e-6)


@pytest.mark.parametrize("target", [10, 30, 50, 80, 150, 300, 500, 700, ">800"])
def test_windows_are_open_left_closed_right(target):
    for table, match in ((PM_WINDOWS, "pm"), (FM_WINDOWS, "fm")):
        lo, hi = table[target]
        r = TargetLength(match=match)
        assert r.score_row(rec(target, int(lo))) == 0.0
        assert r.score_row(rec(target, int(lo) + 1)) == 1.0
        if hi != float("inf"):
            assert r.score_row(rec(target, int(hi))) == 1.0
            assert r.score_row(rec(target, int(hi) + 1)) == 0.0


def test_targets_accept_the_over_800_forms_and_refuse_others():
    assert ruler_target(">800") == ruler_target("more than 800") == ruler_target(1000) == ">800"
    assert ruler_target("150") == 150
    for bad in (100, 800, "lots", True):
        with pytest.raises(ErError, match="Ruler target"):
            ruler_target(bad)


def test_answer_span_ignores_the_reasoning_trace():
    record = {"completion": words(100) + " </think> " + words(12), "target_length": 10}
    assert TargetLength(span="answer").score_row(record) == 1.0
    assert TargetLength().score_row(record) == 0.0


@pytest.mark.parametrize("kwargs", [{"match": "exact"}, {"span": "think"}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        TargetLength(**kwargs)


def test_registered_as_code_in_words():
    cls = REWARDS.get("target-length")
    assert cls.provenance == "code" and "word" in cls.__doc__.splitlines()[0]


@given(target=st.sampled_from([10, 30, 50, 80, 150, 300, 500, 700, ">800"]), text=st.text(max_size=300))
def test_property_reward_is_zero_or_one_on_any_text(target, text):
    assert TargetLength(match="fm").score_row({"completion": text, "target_length": target}) in (0.0, 1.0)


def test_cli_scores_targets_and_missing_target_is_a_located_error(tmp_path):
    from tests.rewards.er_bin import er_score

    rc, out, err = er_score(tmp_path, [rec(80, 75), rec(">800", 900)], "-r", "target-length:match=fm")
    assert rc == 0, err
    assert [r["reward"] for r in out] == [1.0, 1.0]
    rc, _, err = er_score(tmp_path, [rec(80, 75), {"completion": "a b"}], "-r", "target-length")
    assert rc == 1 and ":2:" in err and "target_length" in err


@given(st.text(max_size=200) | st.text(alphabet="ab_Z9 \t\n-.,'$", max_size=200))
def test_property_fast_word_count_equals_the_w_plus_regex(text):
    import re

    assert count_words(text) == len(re.findall(r"\w+", text))
