"""GRPO-lambda: top-lambda groups of a batch get the length-penalised reward (spec rl-length-methods §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from er.advantages import ESTIMATORS
from er.advantages.base import Batch
from er.rewards import REWARDS
from tests.helpers import parse_jsonl
from tests.rewards.catalog import group, rewards, score, usage_error

G0 = ([500, 800, 1000, 1700], [1, 1, 1, 1])
G1 = ([1200, 1500, 2500, 3000], [1, 0, 1, 0])
G2 = ([2000, 2600, 3000, 3600], [0, 0, 1, 0])


def spec_top_group_reward(lengths, alpha=0.6):
    x = np.array(lengths, float)
    z = (x - x.mean()) / x.std()
    return [1 - alpha / (1 + math.exp(-v)) for v in z]


def worked_batch():
    return [group(*G0, gid="g0"), group(*G1, gid="g1"), group(*G2, gid="g2")]


def test_worked_example_top_group_is_length_penalised_others_keep_0_1():
    out = REWARDS.get("grpo-lambda")(lam=1 / 3).score_batch(worked_batch())
    assert out[0] == pytest.approx(spec_top_group_reward(G0[0]), abs=1e-6)
    assert out[0] == pytest.approx([0.8538, 0.7668, 0.7000, 0.5020], abs=5e-5)
    assert out[1] == [1.0, 0.0, 1.0, 0.0]
    assert out[2] == [0.0, 0.0, 1.0, 0.0]


def test_worked_example_grpo_advantages_unbiased_std():
    out = REWARDS.get("grpo-lambda")(lam=1 / 3).score_batch(worked_batch())
    r = np.array(sum(out, []), float)
    adv = ESTIMATORS.get("grpo")()(Batch(r, np.zeros(12), np.ones(12), np.array([0, 4, 8])))
    assert adv[:4] == pytest.approx([0.9898, 0.4087, -0.0377, -1.3608], abs=5e-5)
    assert adv[4:8] == pytest.approx([0.8660, -0.8660, 0.8660, -0.8660], abs=5e-5)
    assert adv[8:] == pytest.approx([-0.5, -0.5, 1.5, -0.5], abs=5e-5)


def test_selection_is_by_ratio_not_position_and_ties_keep_stream_order():
    gl = REWARDS.get("grpo-lambda")(lam=0.5)
    assert gl.selected([0.25, 1.0, 0.5, 1.0]) == {1, 3}
    assert gl.selected([0.5, 0.5, 0.5]) == {0, 1}  # ceil(1.5) = 2, stable
    out = gl.score_batch([group(*G2, gid="a"), group(*G0, gid="b")])
    assert out[0] == [0.0, 0.0, 1.0, 0.0] and out[1][0] > out[1][3]


def test_incorrect_rows_of_a_top_group_score_zero_and_one_correct_row_gets_1_minus_alpha_over_2():
    out = REWARDS.get("grpo-lambda")(lam=1.0).score_batch([group([100, 200, 300], [0, 1, 0])])
    assert out == [[0.0, pytest.approx(0.7), 0.0]]


def test_a_top_group_with_no_correct_row_falls_back_to_0_1():
    out = REWARDS.get("grpo-lambda")(lam=1.0).score_batch([group([100, 200], [0, 0]), group([5, 6], [0, 0])])
    assert out == [[0.0, 0.0], [0.0, 0.0]]


def test_null_verdicts_are_null_and_out_of_the_ratio():
    out = REWARDS.get("grpo-lambda")(lam=0.5).score_batch([group([100, 200], [None, 1]), group([1, 2], [1, 0])])
    assert out[0] == [None, pytest.approx(0.7)]  # p = 1.0 ranks first
    assert out[1] == [1.0, 0.0]


def test_cli_buffers_batch_groups_and_ranks_across_prompts(tmp_path):
    rows = group(*G2, gid="g2") + group(*G1, gid="g1") + group(*G0, gid="g0") + group([10, 20], [1, 1], gid="g3")
    proc = score(tmp_path, rows, "-r", "grpo-lambda:lam=0.3333333333333333,batch_groups=3")
    got = rewards(proc, "grpo-lambda")
    assert got[:8] == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert got[8:12] == pytest.approx([0.8538, 0.7668, 0.7000, 0.5020], abs=5e-5)
    assert got[12:] == pytest.approx([1 - 0.6 / (1 + math.exp(1)), 1 - 0.6 / (1 + math.exp(-1))], abs=1e-6)  # z = -1, +1
    assert "1 groups in a last, smaller batch" in proc.stderr.decode()
    assert [r["group_id"] for r in parse_jsonl(proc.stdout)] == [r["group_id"] for r in rows]


def test_cli_batch_rewards_must_agree_on_batch_groups(tmp_path):
    proc = score(tmp_path, group([1], [1]), "-r", "grpo-lambda:batch_groups=2", "-r", "grpo-lambda:batch_groups=3")
    assert proc.returncode == 2 and "batch_groups" in proc.stderr.decode()


@pytest.mark.parametrize("spec,parameter", [
    ("grpo-lambda:lam=1.5", "lam"), ("grpo-lambda:alpha=-1", "alpha"), ("grpo-lambda:batch_groups=0", "batch_groups"),
])
def test_bad_parameters_are_usage_errors_naming_the_parameter(tmp_path, spec, parameter):
    usage_error(tmp_path, spec, parameter)
