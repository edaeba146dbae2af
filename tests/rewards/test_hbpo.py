"""HBPO budget-aware reward (spec rl-length-methods §4)."""

from __future__ import annotations

import pytest

import tests.spec_rl_length as spec
from er.rewards import REWARDS
from er.rewards.hbpo import PI_APPROX, f1, f2
from tests.rewards.catalog import group, rewards, score, usage_error

BUDGETS = [b for b, _, _ in spec.rows]
LENGTHS = [n for _, n, _ in spec.rows]
CORRECT = [c for _, _, c in spec.rows]


def worked(**kw):
    return group(LENGTHS, CORRECT, budget=BUDGETS, **kw)


def test_f2_values_of_the_spec():
    assert [f2(b) for b in (512, 1024, 2048, 2560)] == pytest.approx([3.9231, 3.6955, 2.8284, 2.2223], abs=5e-5)


def test_worked_example_paper_form_matches_the_appendix():
    got = REWARDS.get("hbpo")()(worked())
    assert got == pytest.approx(list(spec.R), abs=1e-6)
    assert got == pytest.approx([3.9231, 3.8108, 3.6955, 0, 2.8284, 2.4808, 1.5248, 0], abs=5e-5)


def test_code_form_is_min_of_f1_f2_and_differs_only_for_very_short_answers():
    short = group([100], [1], budget=512)
    assert REWARDS.get("hbpo")()(short) == pytest.approx([3.9231], abs=5e-5)
    assert REWARDS.get("hbpo")(form="code")(short) == pytest.approx([3.8965], abs=5e-5)
    assert REWARDS.get("hbpo")(form="code")(worked()) == pytest.approx(
        [min(f1(n, b, pi=PI_APPROX), f2(b, pi=PI_APPROX)) if c and n <= 4096 else 0.0 for b, n, c in spec.rows],
        abs=1e-12)


CODE_PREFIX = "<think> I will answer the question with 512 tokens x</think> "


def test_code_form_uses_the_codes_pi_approx_3_1416():
    # Official: HBPO `rllm/rewards/math_reward.py` rllm_reward_fn_math("math", CODE_PREFIX + "\\boxed{41}",
    # "41", valid_response_length=n) with n = 100, 400, 700 -> 3.896473037893322, 3.923140763309125,
    # 3.8108371523088644 (with math.pi: 3.8964730516, 3.9231411216, 3.8108378183).
    rows = group([100, 400, 700], [1, 1, 1], budget=512, completion=CODE_PREFIX + "\\boxed{41}")
    got = REWARDS.get("hbpo")(form="code")(rows)
    assert got == pytest.approx([3.896473037893322, 3.923140763309125, 3.8108371523088644], abs=1e-12)


def test_code_form_format_check_reads_between_the_first_and_second_think_end():
    # Official: rllm_reward_fn_math on "<think>..</think> x </think> \\boxed{41}" (gold 41) -> -1 (format
    # error: nothing boxed before the second </think>); on "<think>..</think> \\boxed{}" -> 0 (the format
    # check passes, the empty answer is graded wrong).
    rows = group([100, 100], [1, 1], budget=512,
                 completion=[CODE_PREFIX + "y </think> \\boxed{41}", CODE_PREFIX + "\\boxed{}"])
    assert REWARDS.get("hbpo")(form="code")(rows) == [-1.0, 0.0]
    assert REWARDS.get("hbpo")()(rows) == pytest.approx([f2(512), f2(512)], abs=1e-12)  # paper form: no check


def test_code_form_scores_format_errors_minus_one_paper_form_zero():
    rows = group([100, 100], [0, 0], budget=512, completion=["no think close \\boxed{4}", "<think>x</think> 4"])
    assert REWARDS.get("hbpo")(form="code")(rows) == [-1.0, -1.0]
    assert REWARDS.get("hbpo")()(rows) == [0.0, 0.0]


def test_within_a_budget_a_shorter_correct_answer_never_scores_lower_up_to_L_max_paper_form():
    r = REWARDS.get("hbpo")()
    for b in (512, 1024, 2048, 2560):
        values = r(group(list(range(0, 4097, 32)), [1] * 129, budget=b))
        assert all(x >= y for x, y in zip(values, values[1:]))


def test_just_under_L_max_f1_is_negative_while_over_L_max_scores_zero_as_in_the_paper():
    # f1(4096, 512) = 4 cos(pi/2) - 3584/4096 < 0, but n > L_max is "otherwise" -> 0: the paper's
    # reward is not monotone right at L_max (documented in er.rewards.hbpo).
    assert REWARDS.get("hbpo")()(group([4096, 4097], [1, 1], budget=512)) == pytest.approx([-0.875, 0.0], abs=1e-9)


def test_truncated_rows_are_never_correct():
    assert REWARDS.get("hbpo")()(group([100], [1], budget=512, finish=["length"])) == [0.0]


def test_cli_end_to_end_and_missing_budget_is_a_data_error_naming_the_line(tmp_path):
    proc = score(tmp_path, worked(), "-r", "hbpo")
    assert rewards(proc, "hbpo") == pytest.approx(list(spec.R), abs=1e-6)
    rows = worked()
    del rows[2]["budget"]
    proc = score(tmp_path, rows, "-r", "hbpo")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and ":3:" in err and "budget" in err, err


@pytest.mark.parametrize("spec_,parameter", [
    ("hbpo:L_max=0", "L_max"), ("hbpo:beta=-4", "beta"), ("hbpo:form=draft", "form"), ("hbpo:alpha=-1", "alpha"),
])
def test_bad_parameters_are_usage_errors_naming_the_parameter(tmp_path, spec_, parameter):
    usage_error(tmp_path, spec_, parameter)
