"""DLER truncation reward and DA-DLER tiers (spec rl-length-methods §1)."""

from __future__ import annotations

import pytest

from er.rewards import REWARDS
from tests.rewards.catalog import group, rewards, score, usage_error


def dler(**kw):
    return REWARDS.get("dler")(**kw)


def test_worked_example_prompts_a_and_b_score_as_in_the_spec():
    # §1e: A: l = 1200, 2500, 3900, 4000; fin 1,1,1,0; correct 1,1,0,- -> R = 1,1,0,0
    a = group([1200, 2500, 3900, 4000], [1, 1, 0, 1], finish=["stop", "stop", "stop", "length"])
    b = group([800, 1500, 4000, 4000], [1, 0, 1, 1], finish=["stop", "stop", "length", "length"])
    assert dler()(a) == [1.0, 1.0, 0.0, 0.0]
    assert dler()(b) == [1.0, 0.0, 0.0, 0.0]


def test_a_truncated_completion_never_scores_as_correct_even_if_marked_correct():
    rows = group([100, 100], [1, 1], finish=["length", "stop"])
    assert dler()(rows) == [0.0, 1.0]
    assert REWARDS.get("dler-da")()(rows) == [0.0, 1.0]


def test_a_finished_correct_row_over_L_T_scores_zero_and_L_T_itself_is_inside():
    assert dler(L_T=1000)(group([999, 1000, 1001], [1, 1, 1])) == [1.0, 1.0, 0.0]


def test_stop_multiplier_is_off_by_default_and_scales_rows_that_did_not_stop():
    rows = group([100, 100], [1, 1], finish=["stop", "abort"])
    assert dler()(rows) == [1.0, 1.0]
    assert dler(stop_multiplier=0.1)(rows) == [1.0, pytest.approx(0.1)]
    assert "finish_reason" in dler(stop_multiplier=0.1).fields and "finish_reason" not in dler().fields


def test_null_correct_gives_null():
    assert dler()(group([10, 10], [None, 1])) == [None, 1.0]
    assert REWARDS.get("dler-da")()(group([10, 10], [None, None])) == [None, None]


def test_da_dler_worked_example_p_075_uses_2000():
    da = REWARDS.get("dler-da")()
    rows = group([900, 1800, 2600, 3500], [1, 1, 1, 0])
    assert da.limit(0.75) == 2000
    assert da(rows) == [1.0, 1.0, 0.0, 0.0]


def test_da_dler_boundary_p_equal_threshold_takes_the_tighter_tier_and_below_takes_4000():
    da = REWARDS.get("dler-da")()
    assert da(group([1000, 3000, 100, 200], [1, 1, 0, 0])) == [1.0, 0.0, 0.0, 0.0]  # p = 0.5 -> 2000
    assert da(group([1000, 3000, 100, 200], [1, 1, 0, None])) == [1.0, 0.0, 0.0, None]  # p = 2/3
    assert da(group([1000, 3000, 100, 200], [0, 1, 0, 0])) == [0.0, 1.0, 0.0, 0.0]  # p = 0.25 -> 4000


def test_da_dler_three_tiers():
    da = REWARDS.get("dler-da")(thresholds=(0.75, 0.5), lengths=(1000, 2000, 4000))
    assert [da.limit(p) for p in (1.0, 0.75, 0.7, 0.5, 0.49, 0.0)] == [1000, 1000, 2000, 2000, 4000, 4000]


def test_cli_dler_and_da_dler_end_to_end(tmp_path):
    rows = group([900, 1800, 2600, 3500], [1, 1, 1, 0], gid="d") + group([1200, 4100], [1, 1], gid="e")
    proc = score(tmp_path, rows, "-r", "dler", "-r", "dler-da:thresholds=0.5,lengths=2000/4000")
    assert rewards(proc, "dler") == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert rewards(proc, "dler-da") == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("spec,parameter", [
    ("dler:L_T=-1", "L_T"),
    ("dler:stop_multiplier=2", "stop_multiplier"),
    ("dler-da:thresholds=0.2/0.5,lengths=1/2/3", "thresholds"),
    ("dler-da:lengths=2000", "lengths"),
])
def test_bad_parameters_are_usage_errors_naming_the_parameter(tmp_path, spec, parameter):
    usage_error(tmp_path, spec, parameter)
