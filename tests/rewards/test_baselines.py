"""Baseline length rewards (spec rl-length-methods §7) on the reference group c=[1,1,0,0], l=[1000,3000,2000,4000]."""

from __future__ import annotations

import pytest

import tests.spec_rl_length as spec
from er.rewards import REWARDS
from tests.rewards.catalog import group, rewards, score, usage_error

REF = ([1000, 3000, 2000, 4000], [1, 1, 0, 0])


def ref(**fields):
    return group(*REF, **fields)


def test_kimi_length_reward_and_total_match_the_appendix():
    assert REWARDS.get("kimi")(add_correct=False)(ref()) == pytest.approx(list(spec.kimi), abs=1e-6)
    assert REWARDS.get("kimi")()(ref()) == pytest.approx(list(spec.kimi + spec.c), abs=1e-6)
    assert REWARDS.get("kimi")()(ref()) == pytest.approx([1.5, 0.8333, 0.0, -0.5], abs=5e-5)


def test_kimi_all_equal_lengths_give_zero_length_reward():
    assert REWARDS.get("kimi")()(group([7, 7, 7], [1, 0, None])) == [1.0, 0.0, None]


def test_cosine_matches_the_appendix_T_4096():
    expected = [spec.cosine(n, ok) for n, ok in zip(*REF)]
    got = REWARDS.get("cosine")()(ref())
    assert got == pytest.approx(expected, abs=1e-6)
    assert got == pytest.approx([1.8600, 1.1665, -5.1840, -0.0135], abs=5e-5)


def test_cosine_exceed_branch_at_T_and_on_truncation():
    rows = group([4096, 100], [1, 0], finish=["stop", "length"])
    assert REWARDS.get("cosine")()(rows) == [-10.0, -10.0]


def test_overlong_matches_the_appendix():
    r = REWARDS.get("overlong")(L_max=4096, L_cache=1024)
    assert [r.penalty(n) for n in REF[0]] == pytest.approx([spec.dapo_pen(n) for n in REF[0]], abs=1e-6)
    assert r(ref()) == pytest.approx([1.0, 1.0, -1.0, -1.90625], abs=1e-6)
    assert REWARDS.get("overlong")(L_max=4096, L_cache=1024, add_correct=False)(ref()) == [0.0, 0.0, 0.0, -0.90625]
    assert r.penalty(5000) == -1.0


def test_l1_exact_and_max_match_the_appendix():
    rows = ref(target_length=2000)
    assert REWARDS.get("l1")()(rows) == pytest.approx([float(v) for v in spec.l1_exact], abs=1e-6)
    assert REWARDS.get("l1")(mode="max")(rows) == pytest.approx([float(v) for v in spec.l1_max], abs=1e-6)
    assert REWARDS.get("l1")(mode="max")(rows) == pytest.approx([0.8, 0.2, 0.0, 0.0], abs=1e-6)


def test_thinkprune_at_3000():
    assert REWARDS.get("thinkprune")(L=3000)(ref()) == [1.0, 1.0, 0.0, 0.0]


def test_efficient_matches_the_appendix():
    got = REWARDS.get("efficient")()(ref())
    assert got == pytest.approx(list(spec.arora), abs=1e-6)
    assert got == pytest.approx([0.9731, 0.9269, 0.0, 0.0], abs=5e-5)


def test_efficient_single_correct_row_gets_one_minus_half_alpha():
    assert REWARDS.get("efficient")()(group([5, 9], [1, 0])) == pytest.approx([0.95, 0.0])


def test_cli_every_baseline_end_to_end(tmp_path):
    rows = ref(target_length=2000)
    proc = score(tmp_path, rows, "-r", "kimi", "-r", "cosine", "-r", "overlong:L_max=4096,L_cache=1024",
                 "-r", "l1:mode=max", "-r", "thinkprune:L=3000", "-r", "efficient")
    assert rewards(proc, "kimi") == pytest.approx([1.5, 0.8333333, 0.0, -0.5])
    assert rewards(proc, "cosine") == pytest.approx([1.8600, 1.1665, -5.1840, -0.0135], abs=5e-5)
    assert rewards(proc, "overlong") == pytest.approx([1.0, 1.0, -1.0, -1.90625])
    assert rewards(proc, "l1") == pytest.approx([0.8, 0.2, 0.0, 0.0])
    assert rewards(proc, "thinkprune") == [1.0, 1.0, 0.0, 0.0]
    assert rewards(proc, "efficient") == pytest.approx([0.9731, 0.9269, 0.0, 0.0], abs=5e-5)


def test_cli_l1_without_target_length_is_a_data_error_naming_the_line(tmp_path):
    proc = score(tmp_path, ref(), "-r", "l1")
    assert proc.returncode == 1
    assert ":1:" in proc.stderr.decode() and "target_length" in proc.stderr.decode()


@pytest.mark.parametrize("spec_,parameter", [
    ("cosine:T=0", "T"), ("overlong:L_cache=0", "L_cache"), ("l1:mode=min", "mode"),
    ("thinkprune:L=-5", "L"), ("efficient:alpha=2", "alpha"), ("overlong:penalty_factor=-1", "penalty_factor"),
])
def test_bad_parameters_are_usage_errors_naming_the_parameter(tmp_path, spec_, parameter):
    usage_error(tmp_path, spec_, parameter)
