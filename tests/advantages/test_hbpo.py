"""HBPO hierarchical advantage: intra-subgroup plus inter-subgroup (spec rl-length-methods §4)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tests.spec_rl_length as spec
from er.advantages import ESTIMATORS
from er.advantages.base import Batch
from tests.helpers import jsonl, parse_jsonl, sample_record

ER_BIN = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "er")
BUDGETS = [b for b, _, _ in spec.rows]


def batch(rewards, budgets, starts=(0,)):
    n = len(rewards)
    return Batch(np.asarray(rewards, float), np.zeros(n), np.ones(n), np.asarray(starts), {"budget": list(budgets)})


def test_worked_example_paper_form_matches_the_appendix():
    got = ESTIMATORS.get("hbpo")()(batch(spec.R, BUDGETS))
    assert got == pytest.approx(spec.A_hbpo, abs=1e-6)
    assert got == pytest.approx([0.9567, 0.8874, -0.9754, -3.2576, 0.1630, -0.0516, -1.9281, -2.8697], abs=5e-5)


def test_released_code_adds_intra_twice():
    got = ESTIMATORS.get("hbpo")(intra_weight=2)(batch(spec.R, BUDGETS))
    assert got == pytest.approx([0.9006, 0.8312, -2.8232, -5.1053, -0.0108, -0.2255, -3.3880, -4.3296], abs=5e-5)


# Official: HBPO `verl/trainer/ppo/core_algos.py` compute_grpo_outcome_advantage(token_level_rewards =
# R4 as a float64 column, response_mask ones, index all "q", budget = BUDGETS as a column, eps 1e-6):
# PI_APPROX = 3.1416 and A_intra added twice. (Its f2 goes through a float32 torch.cos: ~1e-7 of noise.)
R4 = [3.9231, 3.8108, 3.6955, 0, 2.8284, 2.4808, 1.5248, 0]  # the spec's rewards to 4 decimals
CODE_A = [0.9005102986369411, 0.8311593134161964, -2.8231964459878243, -5.1053564271388705,
          -0.010785468900672557, -0.22544622101759954, -3.3879276048710065, -4.329569477218216]


def test_code_form_is_the_released_advantage_with_pi_approx():
    got = ESTIMATORS.get("hbpo")(form="code")(batch(R4, BUDGETS))
    assert got == pytest.approx(CODE_A, abs=5e-7)
    # math.pi instead of 3.1416 moves it by ~1e-5: the check above sees the difference
    assert ESTIMATORS.get("hbpo")(intra_weight=2)(batch(R4, BUDGETS)) != pytest.approx(CODE_A, abs=5e-7)


def test_code_form_gives_a_group_of_one_no_intra_term_as_the_code():
    # the code: mean 0, std 1, id2aintra 0 -> R / (1 + eps) (its stale second addition is not reproduced)
    got = ESTIMATORS.get("hbpo")(form="code")(batch([3.5], [512]))
    assert got == pytest.approx([3.5 / (1 + 1e-6)], abs=1e-12)


def test_inter_part_uses_global_mean_and_unbiased_std():
    assert spec.R.mean() == pytest.approx(2.2829, abs=5e-5) and spec.R.std(ddof=1) == pytest.approx(1.6193, abs=5e-5)


def test_groups_are_independent_and_subgroups_need_not_be_contiguous():
    one = ESTIMATORS.get("hbpo")()(batch(spec.R, BUDGETS))
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    shuffled = ESTIMATORS.get("hbpo")()(batch(spec.R[order], [BUDGETS[i] for i in order]))
    assert shuffled == pytest.approx(one[order], abs=1e-9)
    two = ESTIMATORS.get("hbpo")()(batch(list(spec.R) * 2, BUDGETS * 2, starts=(0, 8)))
    assert two == pytest.approx(np.concatenate([one, one]), abs=1e-9)


def test_null_rewards_stay_out_of_the_means_and_get_nan():
    r = np.array(spec.R, float)
    r[1] = np.nan
    got = ESTIMATORS.get("hbpo")()(batch(r, BUDGETS))
    assert math.isnan(got[1])
    valid = np.delete(spec.R, 1)
    inter0 = (r[0] - valid.mean()) / (valid.std(ddof=1) + 1e-6)
    assert got[0] == pytest.approx(inter0 + r[0] - spec.f2(512), abs=1e-9)


def test_missing_budget_is_a_data_error(tmp_path):
    from er.errors import ErError

    with pytest.raises(ErError, match="budget"):
        ESTIMATORS.get("hbpo")()(batch(spec.R, BUDGETS[:7] + [None]))


def test_cli_score_then_advantage_end_to_end(tmp_path):
    rows = [sample_record("q", i, 8, completion_tokens=n, correct=bool(c), budget=b)
            for i, (b, n, c) in enumerate(spec.rows)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl(rows))
    scored = subprocess.run([ER_BIN, "score", str(path), "--workers", "0", "-r", "hbpo"], capture_output=True, timeout=120)
    assert scored.returncode == 0, scored.stderr.decode()
    adv = subprocess.run([ER_BIN, "advantage", "-e", "hbpo"], input=scored.stdout, capture_output=True, timeout=120)
    assert adv.returncode == 0, adv.stderr.decode()
    out = parse_jsonl(adv.stdout)
    assert [r["advantage"] for r in out] == pytest.approx(spec.A_hbpo, abs=1e-6)
    assert {r["estimator"] for r in out} == {"hbpo"}


def test_cli_advantage_without_budget_exits_1(tmp_path):
    rows = [sample_record("q", i, 2, reward=1.0 * i) for i in range(2)]
    proc = subprocess.run([ER_BIN, "advantage", "-e", "hbpo"], input=jsonl(rows), capture_output=True, timeout=120)
    assert proc.returncode == 1 and "budget" in proc.stderr.decode() and ":1:" in proc.stderr.decode()


def test_cli_bad_parameter_is_a_usage_error(tmp_path):
    proc = subprocess.run([ER_BIN, "advantage", "-e", "hbpo:L_max=0"], input=b"", capture_output=True, timeout=120)
    assert proc.returncode == 2 and "L_max" in proc.stderr.decode()
