"""DRPO positive length weights and loss fields (spec rl-length-methods §5)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import tests.spec_rl_length as spec
from er.advantages import ESTIMATORS
from er.advantages.base import Batch
from er.advantages.drpo import objective
from er.errors import ErError
from tests.helpers import jsonl, parse_jsonl, sample_record

ER_BIN = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "er")
LENGTHS = [1000, 2000, 7800, 400, 600, 800]
REWARD = [1, 1, 1, 0, 0, 0]


def batch(reward=REWARD, lengths=LENGTHS, starts=(0,), logprobs=None):
    n = len(reward)
    return Batch(np.asarray(reward, float), np.asarray(lengths, float), np.asarray(reward, float),
                 np.asarray(starts), {"logprobs": logprobs or [None] * n})


def test_worked_positive_weights_match_the_appendix():
    out = ESTIMATORS.get("drpo")()(batch())
    assert out["drpo_weight"][:3] == pytest.approx(spec.w, abs=1e-6)
    assert out["drpo_weight"][:3] == pytest.approx([0.77204, 0.22777, 0.00019], abs=5e-6)
    assert list(out["drpo_weight"][3:]) == [0.0, 0.0, 0.0]
    assert list(out["drpo_negative"]) == [False, False, False, True, True, True]


def test_worked_objective_and_negative_gradients():
    assert objective(spec.w, spec.sp, spec.sn, spec.tau) == pytest.approx(spec.J, abs=1e-6)
    assert spec.J == pytest.approx(0.3198, abs=5e-5)
    # the compatibility advantage of a negative is dJ/ds at the behaviour scores (mean logprobs)
    logprobs = [None, None, None, [-0.4] * 3, [-0.5, -0.7], [-0.9]]
    out = ESTIMATORS.get("drpo")()(batch(logprobs=logprobs))
    sn = np.array([-0.40, -0.60, -0.90])
    softmax = np.exp(sn / 10) / np.exp(sn / 10).sum()
    assert out["advantage"][3:] == pytest.approx(-softmax, abs=1e-9)
    assert out["advantage"][3:] == pytest.approx([-0.3411, -0.3344, -0.3245], abs=5e-5)
    assert out["advantage"][:3] == pytest.approx(spec.w, abs=1e-9)


def test_without_logprobs_negatives_share_the_uniform_gradient():
    out = ESTIMATORS.get("drpo")()(batch())
    assert out["advantage"][3:] == pytest.approx([-1 / 3] * 3)


def test_every_correct_row_keeps_a_positive_weight_unlike_grpo_with_a_length_penalty():
    r = np.array(REWARD) - 0.9 * np.array(LENGTHS) / 8192
    grpo = ESTIMATORS.get("grpo")()(Batch(r, np.zeros(6), np.ones(6), np.array([0])))
    assert grpo == pytest.approx([1.3879, 1.1423, -0.2822, -0.7002, -0.7493, -0.7985], abs=5e-5)
    assert (ESTIMATORS.get("drpo")()(batch())["advantage"][:3] > 0).all()


def test_shorter_positives_weigh_more_and_lambda_to_infinity_is_uniform_disco():
    w = ESTIMATORS.get("drpo")()(batch())["drpo_weight"][:3]
    assert w[0] > w[1] > w[2] > 0 and w.sum() == pytest.approx(1.0)
    assert ESTIMATORS.get("drpo")(lam=1e9)(batch())["drpo_weight"][:3] == pytest.approx([1 / 3] * 3)


def test_groups_without_positives_or_negatives_do_not_contribute_and_nulls_get_nan():
    out = ESTIMATORS.get("drpo")()(batch(reward=[1, 1, 0, 0, 1, np.nan, 0], lengths=[10] * 7, starts=(0, 2, 4)))
    assert list(out["drpo_weight"][:4]) == [0.0] * 4 and not out["drpo_negative"][:4].any()
    assert out["drpo_weight"][4] == 1.0 and list(out["drpo_negative"][4:]) == [False, False, True]
    assert np.isnan(out["advantage"][5]) and list(out["advantage"][:4]) == [0.0] * 4


def test_rewards_other_than_0_or_1_are_a_data_error():
    with pytest.raises(ErError, match="exactly 1 or 0"):
        ESTIMATORS.get("drpo")()(batch(reward=[1, 0.5, 0, 0, 0, 0]))


def test_cli_writes_the_loss_fields(tmp_path):
    rows = [sample_record("q", i, 6, completion_tokens=n, reward=float(r), correct=bool(r))
            for i, (n, r) in enumerate(zip(LENGTHS, REWARD))]
    rows += [sample_record("z", i, 2, completion_tokens=5, reward=1.0, correct=True) for i in range(2)]
    proc = subprocess.run([ER_BIN, "advantage", "-e", "drpo"], input=jsonl(rows), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = parse_jsonl(proc.stdout)
    assert [r["drpo_weight"] for r in out[:3]] == pytest.approx(spec.w, abs=1e-6)
    assert [r["drpo_negative"] for r in out] == [False] * 3 + [True] * 3 + [False] * 2
    assert [r["advantage"] for r in out[6:]] == [0.0, 0.0] and {r["estimator"] for r in out} == {"drpo"}


@pytest.mark.parametrize("spec_,parameter", [("drpo:lam=0", "lam"), ("drpo:L=0", "L"), ("drpo:tau=-1", "tau")])
def test_cli_bad_parameters_are_usage_errors(spec_, parameter):
    proc = subprocess.run([ER_BIN, "advantage", "-e", spec_], input=b"", capture_output=True, timeout=120)
    assert proc.returncode == 2 and parameter in proc.stderr.decode()
