"""DLER batch-wise whitening reproduces spec §1e (rl-length-methods.md) exactly."""

from __future__ import annotations

import numpy as np
import pytest

from er.advantages.base import Batch
from er.advantages.batch import BatchWhitened
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record

# Prompts A and B survive dynamic sampling; C (all correct) is dropped. Rewards after the stop multiplier.
LENGTHS = [1200, 2500, 3900, 4000, 800, 1500, 4000, 4000]
FINISHED = [1, 1, 1, 0, 1, 1, 0, 0]
SCORES = [1, 1, 0, 0, 1, 0, 0, 0]
REWARDS = [s * (1.0 if f else 0.1) for s, f in zip(SCORES, FINISHED)]
TOKEN_WEIGHTED = [1.7550, 1.7550, -0.8376, -0.8376, 2.4032, -0.1894, -0.1894, -0.1894]


def dler_batch() -> Batch:
    return Batch(np.array(REWARDS), np.array(LENGTHS, float), np.array(SCORES, float), np.array([0, 4]))


def test_token_weighted_whitening_matches_the_worked_example():
    assert BatchWhitened()(dler_batch()) == pytest.approx(TOKEN_WEIGHTED, abs=5e-5)


def test_intermediate_mu_and_sigma_match():
    centred = np.array(REWARDS) - np.repeat([np.mean(REWARDS[:4]), np.mean(REWARDS[4:])], 4)
    assert centred == pytest.approx([0.5, 0.5, -0.5, -0.5, 0.75, -0.25, -0.25, -0.25])
    w = np.array(LENGTHS, float)
    mu = (w * centred).sum() / w.sum()
    sigma = np.sqrt((w * (centred - mu) ** 2).sum() / w.sum() * w.sum() / (w.sum() - 1))
    assert mu == pytest.approx(-0.17694, abs=5e-6) and sigma == pytest.approx(0.38572, abs=5e-6)


def test_sequence_level_whitening_row():
    out = BatchWhitened(weighting="sequences")(dler_batch())
    assert out == pytest.approx([1.0, 1.0, -1.0, -1.0, 1.5, -0.5, -0.5, -0.5], abs=1e-6)


def test_boost_adds_b_to_correct_rows_only():
    out = BatchWhitened(boost=0.1)(dler_batch())
    assert out == pytest.approx([1.8550, 1.8550, -0.8376, -0.8376, 2.5032, -0.1894, -0.1894, -0.1894], abs=5e-5)


def test_the_whole_example_through_the_cli_with_dynamic_sampling():
    rows = []
    groups = {"A": (LENGTHS[:4], REWARDS[:4]), "B": (LENGTHS[4:], REWARDS[4:]), "C": ([600, 700, 900, 1000], [1.0] * 4)}
    for gid, (lens, rews) in groups.items():
        rows += [sample_record(gid, i, 4, completion_tokens=n, reward=r) for i, (n, r) in enumerate(zip(lens, rews))]
    proc = run_er("advantage", "-e", "batch", "--dynamic-sampling", "--batch-groups", "2", input=jsonl(rows), check=True)
    out = parse_jsonl(proc.stdout)
    assert [r["group_id"] for r in out] == ["A"] * 4 + ["B"] * 4
    assert [r["advantage"] for r in out] == pytest.approx(TOKEN_WEIGHTED, abs=5e-5)
    assert {r["estimator"] for r in out} == {"batch"}
    assert "12 in, 8 out, 0 rejected; 4 dropped (all rewards equal (1.0): 4)" in proc.stderr.decode()


def test_batch_estimator_needs_completion_tokens():
    rows = [sample_record("g", i, 2, reward=float(i)) for i in range(2)]
    del rows[1]["completion_tokens"]
    proc = run_er("advantage", "-e", "batch", input=jsonl(rows))
    assert proc.returncode == 1 and "<stdin>:2:" in proc.stderr.decode() and "completion_tokens" in proc.stderr.decode()


def test_boost_follows_the_code_rule_score_at_least_one_not_the_correct_flag():
    # Official: DLER `verl-dler/verl/workers/actor/dp_actor.py` boost_high_score_advantages(advantages
    # [[0.5]] * 4, scores [1.0, 0.0, 0.99999, 0.1], value 0.1, threshold 1.0) -> [0.6, 0.5, 0.6, 0.5]:
    # +0.1 where score >= 1 - 1e-5. The second row is correct but past L_T (dler reward 0): no boost.
    rewards, correct = [1.0, 0.0, 0.99999, 0.1], [1.0, 1.0, 1.0, 1.0]
    b = Batch(np.array(rewards), np.array([100.0, 200.0, 300.0, 400.0]), np.array(correct), np.array([0]))
    boosted = BatchWhitened(boost=0.1)(b) - BatchWhitened()(b)
    assert boosted == pytest.approx([0.1, 0.0, 0.1, 0.0], abs=1e-12)
