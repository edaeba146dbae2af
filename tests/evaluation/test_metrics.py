"""Hand-computed numbers for the accuracy/length metrics of er.evaluation.metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from er.evaluation import metrics as M


def test_pass_at_k_matches_the_closed_form_of_chen_et_al():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert M.pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-12)
    # n=4, c=1, k=1: 1 - C(3,1)/C(4,1) = c/n
    assert M.pass_at_k(4, 1, 1) == pytest.approx(0.25, abs=1e-12)
    # n=10, c=3, k=4: 1 - C(7,4)/C(10,4) = 1 - 35/210
    assert M.pass_at_k(10, 3, 4) == pytest.approx(1 - 35 / 210, abs=1e-12)
    # the numerically stable product form of the paper agrees
    n, c, k = 64, 5, 8
    product = 1 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))
    assert M.pass_at_k(n, c, k) == pytest.approx(product, abs=1e-12)


def test_pass_at_k_is_one_when_fewer_wrong_than_k_and_zero_without_correct():
    assert M.pass_at_k(4, 3, 2) == 1.0
    assert M.pass_at_k(8, 0, 4) == 0.0


def test_mean_pass_at_k_averages_problems_and_is_null_when_a_problem_has_fewer_than_k():
    counts = Counter({(5, 2): 1, (5, 0): 1, (5, 5): 2})  # 4 problems
    assert M.mean_pass_at_k(counts, 2) == pytest.approx((0.7 + 0 + 1 + 1) / 4, abs=1e-12)
    assert M.mean_pass_at_k(counts, 1) == pytest.approx((0.4 + 0 + 1 + 1) / 4, abs=1e-12)
    assert M.mean_pass_at_k(Counter({(5, 2): 1, (1, 1): 1}), 2) is None
    with pytest.raises(ValueError):
        M.pass_at_k(1, 1, 2)


def test_majority_vote_takes_the_most_common_answer_and_breaks_ties_by_first_seen():
    votes = [("3", False), ("4", True), ("4", True), (None, False), ("3", False)]
    assert M.majority_correct(votes, 3) is True      # 4 twice vs 3 once
    assert M.majority_correct(votes, 5) is False     # 3 twice vs 4 twice: tie -> "3" was first
    assert M.majority_correct([(None, True)], 1) is False  # nobody voted
    assert M.mean_maj_at_k([votes, [("1", True)] * 5], 5) == pytest.approx(0.5)
    assert M.mean_maj_at_k([votes, [("1", True)] * 2], 4) is None


def test_budget_accuracy_counts_correct_answers_within_the_budget_over_judged_rows():
    tokens = np.array([100, 500, 1000, 3000, 200, -1])
    verdicts = np.array([1, 1, 0, 1, 2, 1], dtype=np.uint8)  # row 5 null; row 6 correct, length unknown
    acc = M.budget_accuracy(tokens, verdicts, [100, 499, 500, 5000])
    # judged rows: 5 (the null is left out); correct within b: b=100 -> 1, 499 -> 1, 500 -> 2, 5000 -> 3
    assert acc == {100: pytest.approx(1 / 5), 499: pytest.approx(1 / 5), 500: pytest.approx(2 / 5), 5000: pytest.approx(3 / 5)}


def test_length_summary_mean_median_p90():
    s = M.length_summary(np.array([10, 20, 30, 40, 100]))
    assert s == {"mean": 40.0, "median": 30.0, "p90": pytest.approx(76.0)}  # p90: 40 + 0.6*(100-40)
    assert M.length_summary(np.array([], dtype=np.int64)) == {"mean": None, "median": None, "p90": None}


def test_aes_rewards_length_reduction_and_penalises_accuracy_loss_five_times():
    # 1000 -> 500 tokens, 0.50 -> 0.55 accuracy: ΔL = 0.5, ΔA = +0.1 -> 0.5 + 3*0.1
    assert M.aes(500, 0.55, 1000, 0.50) == pytest.approx(0.8, abs=1e-12)
    # 1000 -> 600 tokens, 0.50 -> 0.45: ΔL = 0.4, ΔA = -0.1 -> 0.4 - 5*0.1
    assert M.aes(600, 0.45, 1000, 0.50) == pytest.approx(-0.1, abs=1e-12)
    assert M.aes(600, 0.45, 0, 0.5) is None


def test_headline_is_the_papers_form():
    assert M.headline(-0.473, 0.0148) == "-47.3% length, +1.48 accuracy"
    assert M.relative_change(527, 1000) == pytest.approx(-0.473)


def test_default_ks_are_powers_of_two_and_n():
    assert M.default_ks(64) == [1, 2, 4, 8, 16, 32, 64]
    assert M.default_ks(5) == [1, 2, 4, 5]
    assert M.default_ks(1) == [1]
    assert M.default_ks(0) == []


def test_oaa_auc_is_the_mean_of_correct_times_the_unused_share_of_the_horizon():
    # think 60 ✓, 50 ✓, 150 ✗, 10 null (left out), 300 ✓ (past T: 0), unknown ✓ (counts 0); T = 256
    think = np.array([60, 50, 150, 10, 300, -1])
    correct = np.array([1, 1, 0, 2, 1, 1], dtype=np.uint8)
    assert M.oaa_auc(think, correct, 256) == pytest.approx((196 / 256 + 206 / 256) / 5)
    assert M.oaa_auc(think, np.full(6, 2, np.uint8), 256) is None


def test_overthinking_score_is_llmthinkbench_harmonic_mean_of_accuracy_and_min_max_token_efficiency():
    tokens = [100, 300, 200]
    assert M.overthinking_score(0.5, 100, tokens) == pytest.approx(2 * 0.5 * 1 / 1.5)  # TE = 1
    assert M.overthinking_score(0.8, 300, tokens) == 0.0                               # TE = 0
    assert M.overthinking_score(1.0, 200, tokens) == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # TE = 0.5
    assert M.overthinking_score(0.7, 100, [100]) == 0.7  # alone: the accuracy (as the released code)
    assert M.overthinking_score(0.5, 100, [100, 100]) == pytest.approx(2 * 0.5 / 1.5)  # min = max: TE = 1
    assert M.overthinking_score(0.0, 300, tokens) == 0.0
    assert M.overthinking_score(None, 300, tokens) is None


def test_aes_weights_are_configurable():
    assert M.parse_aes_weights(None) == (1.0, 3.0, 5.0)
    a, b, c = M.parse_aes_weights("2,1,0.5")
    assert M.aes(500, 0.55, 1000, 0.50, a, b, c) == pytest.approx(2 * 0.5 + 1 * 0.1)
    assert M.aes(600, 0.45, 1000, 0.50, a, b, c) == pytest.approx(2 * 0.4 - 0.5 * 0.1)
    with pytest.raises(Exception, match="three numbers"):
        M.parse_aes_weights("1,2")
