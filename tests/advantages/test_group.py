"""Group-relative estimators reproduce the spec's worked numbers (rl-length-methods §7.1)."""

from __future__ import annotations

import numpy as np
import pytest

from er.advantages.base import Batch
from er.advantages.group import DrGrpo, Grpo, NoBaseline, Rloo

# verl: unbiased std plus eps = 1e-6; the spec quotes the rounded value 0.8660.
A_REF = 0.5 / (np.std([1, 1, 0, 0], ddof=1) + 1e-6)


def batch(*groups: list[float | None], tokens=None) -> Batch:
    rewards = [np.nan if r is None else r for g in groups for r in g]
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    n = len(rewards)
    return Batch(np.array(rewards, float), np.array(tokens or [1] * n, float), np.full(n, np.nan), starts)


def test_grpo_unbiased_std_gives_plus_minus_0866_on_the_reference_group():
    out = Grpo()(batch([1, 1, 0, 0]))
    assert out == pytest.approx([A_REF, A_REF, -A_REF, -A_REF], abs=1e-9)
    assert np.round(out, 4).tolist() == [0.866, 0.866, -0.866, -0.866]


def test_grpo_population_std_gives_plus_minus_one():
    assert Grpo(std="population")(batch([1, 1, 0, 0])) == pytest.approx([1, 1, -1, -1], abs=1e-5)


def test_grpo_plain_contrast_row_of_the_dler_example():
    # spec §1e, "Plain GRPO, for contrast": group B = [1, 0, 0, 0] -> 1.5, -0.5, -0.5, -0.5
    assert Grpo()(batch([1, 0, 0, 0])) == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-5)


def test_grpo_group_of_one_uses_mean_0_std_1_and_still_adds_eps_like_verl():
    # Official: verl `verl/trainer/ppo/core_algos.py` compute_grpo_outcome_advantage on one row,
    # token_level_rewards [[2.5]], index ["q"], epsilon 1e-6 -> 2.4999976158 (R / (1 + eps); verl adds
    # eps to a float32 tensor(1.0), hence the last digits: er computes 2.4999975 in float64).
    assert Grpo()(batch([2.5])) == pytest.approx([2.4999976158], abs=2e-7)
    assert Grpo()(batch([2.5])) != pytest.approx([2.5], abs=1e-6)


def test_groups_are_normalised_independently_in_one_call():
    out = Grpo()(batch([1, 1, 0, 0], [1, 0, 0, 0]))
    assert out[:4] == pytest.approx([A_REF, A_REF, -A_REF, -A_REF], abs=1e-9)
    assert out[4:] == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-5)


def test_null_rewards_are_left_out_of_the_statistics():
    out = Grpo()(batch([1, None, 1, 0, 0]))
    assert np.isnan(out[1])
    assert out[[0, 2, 3, 4]] == pytest.approx([A_REF, A_REF, -A_REF, -A_REF], abs=1e-9)


def test_dr_grpo_only_centres():
    assert DrGrpo()(batch([1, 0, 0, 0])) == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_rloo_subtracts_the_mean_of_the_others():
    # A_0 = 1 - mean(0, 0, 0) = 1; A_1 = 0 - mean(1, 0, 0) = -1/3
    assert Rloo()(batch([1, 0, 0, 0])) == pytest.approx([1, -1 / 3, -1 / 3, -1 / 3])


def test_none_passes_the_reward_through():
    assert NoBaseline()(batch([0.3, -2])) == pytest.approx([0.3, -2])


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Grpo(std="sample")
