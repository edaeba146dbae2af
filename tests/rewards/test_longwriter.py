"""`longwriter-length` (notes): 1 inside the word range, linear outside, worked numbers of spec §4(e)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.longwriter import LongWriterLength


def rec(n, lower=2000, upper=3000, **extra):
    return {"completion": " ".join(["word"] * n), "target_lower": lower, "target_upper": upper, **extra}


def test_worked_lengths_of_the_spec():
    r = LongWriterLength()
    got = [r.score_row(rec(n)) for n in (1500, 2500, 4500, 9000)]
    assert got == pytest.approx([0.75, 1.0, 7500 / 9000, 3000 / 9000], abs=1e-6)
    assert got == pytest.approx([0.75, 1.0, 0.8333, 0.3333], abs=5e-5)


def test_range_edges_are_inside_and_beyond_l_max_clips_at_zero():
    r = LongWriterLength()
    assert r.score_row(rec(2000)) == 1.0 and r.score_row(rec(3000)) == 1.0
    assert r.score_row(rec(12000)) == 0.0 and r.score_row(rec(13000)) == 0.0
    assert r.score_row(rec(0)) == 0.0


def test_units_words_chars_tokens_and_answer_span():
    assert LongWriterLength().length({"completion": "well-known e-mail"}) == 4
    assert LongWriterLength(unit="chars").length({"completion": "中文 写作"}) == 4
    assert LongWriterLength(unit="tokens").length({"completion": "x", "completion_tokens": 77}) == 77
    assert LongWriterLength(span="answer").length({"completion": "plan plan </think><answer>one two</answer>"}) == 4


def test_custom_field_names_and_bad_ranges():
    r = LongWriterLength(lower_field="lo", upper_field="hi")
    assert r.fields == {"completion": "string", "lo": "number", "hi": "number"}
    assert r.score_row({"completion": "a b c", "lo": 2, "hi": 4}) == 1.0
    for lower, upper in ((3000, 2000), (0, 10), (100, 12000)):
        with pytest.raises(ErError):
            LongWriterLength().score_row(rec(10, lower, upper))


@pytest.mark.parametrize("kwargs", [{"L_max": 0}, {"unit": "lines"}, {"span": "x"}, {"lower_field": ""}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        LongWriterLength(**kwargs)


def test_registered_with_notes_provenance():
    assert REWARDS.get("longwriter-length").provenance == "notes"


@given(n=st.integers(0, 20000), lower=st.integers(1, 5000), width=st.integers(0, 5000))
def test_property_bounded_in_0_1_and_1_inside_the_range(n, lower, width):
    r = LongWriterLength(unit="tokens")
    v = r.score_row({"completion": "", "completion_tokens": n, "target_lower": lower, "target_upper": lower + width})
    assert math.isfinite(v) and 0.0 <= v <= 1.0
    assert (v == 1.0) == (lower <= n <= lower + width)


def test_cli_reads_the_range_from_the_record_and_reports_a_missing_bound(tmp_path):
    from tests.rewards.er_bin import er_score

    rc, out, err = er_score(tmp_path, [rec(1500), rec(4500)], "-r", "longwriter-length")
    assert rc == 0, err
    assert [r["reward"] for r in out] == pytest.approx([0.75, 7500 / 9000], abs=1e-9)
    rc, _, err = er_score(tmp_path, [rec(10), {"completion": "a", "target_lower": 1}], "-r", "longwriter-length")
    assert rc == 1 and ":2:" in err and "target_upper" in err
