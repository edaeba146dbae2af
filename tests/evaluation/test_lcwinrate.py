"""Length-Controlled AlpacaEval (spec length-control-and-eval.md §7): worked examples and the GLM fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from er.evaluation.lcwinrate import (
    LCWinRateReport,
    fit_cv,
    fit_glm,
    lc_win_rate,
    preference_to_y,
    win_probability,
)
from er.evaluation.report import Keys
from er.schema import errors
from tests.helpers import jsonl, parse_jsonl, run_er


def test_preference_mapping():
    assert [preference_to_y(p) for p in (1, 2, 0, 1.5, 1.8)] == [0.0, 1.0, 0.5, 0.5, pytest.approx(0.8)]
    assert preference_to_y(None) is None and preference_to_y(float("nan")) is None


def test_one_row_win_probability_and_its_length_controlled_value():
    # θ = 0.2, φ = -1, ψ = 0.3; model 600 chars longer: Δ = -600; s = 500; γ = 0.5
    assert win_probability(0.2, -1.0, 0.3, delta=-600, s=500, gamma=0.5) == pytest.approx(0.7656, abs=1e-4)
    assert lc_win_rate(0.2, 0.3, [0.5]) == pytest.approx(0.5866, abs=1e-4)


def test_three_instructions_give_lc_61_11():
    gammas = (-1, 0, 1.5)
    probs = [1 / (1 + math.exp(-(0.4 + 0.5 * g))) for g in gammas]
    assert probs == [pytest.approx(0.4750, abs=1e-4), pytest.approx(0.5987, abs=1e-4), pytest.approx(0.7595, abs=1e-4)]
    assert 100 * lc_win_rate(0.4, 0.5, gammas) == pytest.approx(61.11, abs=5e-3)


def synthetic(n=400, seed=0, theta=0.2, phi=-1.0, psi=0.3):
    rng = np.random.default_rng(seed)
    delta = rng.normal(-400, 500, n)          # the model is 400 chars longer on average
    gamma = rng.normal(0, 1, n)
    s = delta.std(ddof=1)
    p = 1 / (1 + np.exp(-(theta + phi * np.tanh(delta / s) + psi * gamma)))
    y = (rng.random(n) < p).astype(float)
    return delta, gamma, s, y


def newton(X, y, iters=50):
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ beta))
        beta += np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
    return beta


def test_unpenalised_scipy_fit_equals_a_newton_fit_and_removes_the_length_bias():
    delta, gamma, s, y = synthetic()
    X = np.column_stack([np.ones_like(delta), np.tanh(delta / s), gamma])
    beta = fit_glm(X, y, np.ones_like(y), C=None)
    assert beta == pytest.approx(newton(X, y), abs=1e-5)
    raw = y.mean()
    lc = lc_win_rate(beta[0], beta[2], gamma)
    assert beta[1] < 0          # longer model outputs (Δ < 0) raise the win probability
    assert lc < raw             # removing the length advantage lowers the win rate


def test_l1_penalty_shrinks_and_cv_picks_a_c_from_the_grid():
    delta, gamma, s, y = synthetic(seed=1)
    X = np.column_stack([np.ones_like(delta), np.tanh(delta / s), gamma])
    w = np.ones_like(y)
    strong = fit_glm(X, y, w, C=1e-4)
    assert np.abs(strong).max() < 1e-6            # C·loss is negligible next to the L1 norm: all zero
    beta, C = fit_cv(X, y, w)
    assert 1e-4 <= C <= 1e4
    assert beta == pytest.approx(fit_glm(X, y, w, C=C), abs=1e-6)


def annotation_rows(n=200, seed=3):
    delta, gamma, _s, y = synthetic(n, seed)
    rows = []
    for d, g, yy in zip(delta, gamma, y):
        base_len = 1000
        rows.append({"instruction": "q", "output_1": "x" * base_len, "output_2": "x" * max(1, int(base_len - d)),
                     "generator_1": "gpt4", "generator_2": "mine", "preference": float(1.0 + yy),
                     "instruction_difficulty": float(g)})
    return rows


def test_report_per_model_with_self_baseline_at_one_half():
    report = LCWinRateReport(Keys())
    rows = annotation_rows()
    for r in rows:
        report.add("ann.jsonl", r)
    for r in rows[:10]:
        report.add("ann.jsonl", dict(r, generator_2="gpt4", output_2=r["output_1"], preference=1.5))
    mine, base = report.reports()
    assert (mine["model"], mine["baseline"], mine["n"]) == ("mine", "gpt4", 200)
    assert mine["win_rate"] == pytest.approx(np.mean([r["preference"] - 1 for r in rows]))
    assert mine["lc_win_rate"] < mine["win_rate"] and mine["glm"] == "length_controlled_noreg"
    assert base["lc_win_rate"] == 0.5
    assert errors(mine, "report") == []


def test_lc_winrate_on_the_command_line_with_gamed_baseline_rows():
    rows = annotation_rows(120)
    gamed = [dict(r, generator_2="gpt4_verbose", output_2="x" * 1500) for r in annotation_rows(40, seed=9)]
    out = parse_jsonl(run_er("eval", "--metric", "lc-winrate", "--gamed", "gpt4_verbose",
                             input=jsonl(rows + gamed), check=True).stdout)
    [r] = out
    assert r["model"] == "mine" and r["glm"] == "length_controlled_v1" and 0 < r["lc_win_rate"] < 1


def rows_with_null_preferences():
    """40 annotations; every 8th (i = 3, 11, ...) has no preference and a much longer model output."""
    out = []
    for i in range(40):
        null = i % 8 == 3
        d = 3000 + 100 * i if null else 60 * ((i * 7) % 23) - 500   # model minus baseline, characters
        pref = None if null else (2.0 if (i * 5) % 7 < 4 + (d > 200) else 1.0)
        if i % 10 == 6:
            pref = 1.5
        out.append({"output_1": "b" * 1000, "output_2": "m" * (1000 + d), "generator_1": "base",
                    "generator_2": "mine", "preference": pref, "instruction_difficulty": ((i * 3) % 11 - 5) / 5})
    return out


def test_null_preferences_stay_in_the_length_normaliser_and_the_lc_mean_as_alpaca_eval():
    # Official: alpaca_eval `metrics/glm_winrate.py` get_length_controlled_winrate(glm_name=
    # "length_controlled_noreg", save_weights_dir=None) on these rows (preference NaN for the null
    # ones, instruction_difficulty from the rows) gives length_controlled_winrate 69.01614 and
    # lc_standard_error 0.97848 (percent); win_rate 62.857 over the 35 rows with a preference.
    # Dropping the null rows entirely (the old behaviour) gives 66.995 / 0.70967 there.
    report = LCWinRateReport(Keys())
    for r in rows_with_null_preferences():
        assert report.add("ann.jsonl", r) is None
    [rec] = report.reports()
    assert rec["n"] == 40 and rec["glm"] == "length_controlled_noreg"
    assert rec["win_rate"] == pytest.approx(0.628571, abs=1e-6)
    # scipy vs liblinear: the optimum agrees to ~1e-5
    assert rec["lc_win_rate"] == pytest.approx(0.6901614, abs=5e-5)
    assert rec["lc_standard_error"] == pytest.approx(0.0097848, abs=5e-6)
