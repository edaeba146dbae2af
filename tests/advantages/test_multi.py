"""Normalise-then-sum (`er advantage --normalize-then-sum mean|sum`): LongWriter-Zero's worked fusion, spec §4(e)."""

from __future__ import annotations

import numpy as np
import pytest

from er.advantages.base import Batch
from er.advantages.group import Grpo
from er.advantages.multi import NormalizeThenSum
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record

R_LEN = [0.75, 1.0, 7500 / 9000, 3000 / 9000]
R_WRITE = [0.2, 1.1, 0.9, 0.4]
R_FMT = [1.0, 1.0, 1.0, 0.0]


def population_grpo(r):
    r = np.asarray(r, dtype=float)
    return (r - r.mean()) / r.std()


def rows():
    return [sample_record("g", i, 4, rewards={"len": a, "write": b, "fmt": c}, reward=a + b + c)
            for i, (a, b, c) in enumerate(zip(R_LEN, R_WRITE, R_FMT))]


def batch(parts):
    reward = np.array([sum(p.values()) for p in parts])
    return Batch(reward, np.zeros(len(parts)), np.zeros(len(parts)), np.array([0]), {"rewards": parts})


def test_per_component_advantages_averaged_reproduce_longwriter_zero():
    parts = [r["rewards"] for r in rows()]
    adv = NormalizeThenSum(Grpo(std="population", eps=0.0), "mean")(batch(parts))
    exact = (population_grpo(R_LEN) + population_grpo(R_WRITE) + population_grpo(R_FMT)) / 3
    assert adv == pytest.approx(exact, abs=1e-9)
    assert adv == pytest.approx([-0.1914, 0.9721, 0.5627, -1.3435], abs=5e-5)
    # normalising the raw sum instead gives the spec's contrast numbers
    assert population_grpo(np.add(np.add(R_LEN, R_WRITE), R_FMT)) == pytest.approx(
        [-0.1976, 1.0708, 0.6664, -1.5396], abs=5e-5)


def test_sum_is_k_times_mean_and_null_components_contribute_zero():
    parts = [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": None}, {"a": 1.0, "b": 2.0}]
    b = batch([{k: (v or 0.0) for k, v in p.items()} for p in parts])
    b.fields = {"rewards": parts}
    est = Grpo(std="population", eps=0.0)
    s = NormalizeThenSum(est, "sum")(b)
    m = NormalizeThenSum(est, "mean")(b)
    # a: [1, 0, 1] -> [0.7071, -1.4142, 0.7071]; b over the non-null [0, 2] -> [-1, (null: 0), 1]
    assert s == pytest.approx([1 / np.sqrt(2) - 1, -np.sqrt(2), 1 / np.sqrt(2) + 1], abs=1e-9)
    assert m == pytest.approx(s / 2, abs=1e-12)


def test_bad_mode_is_a_value_error():
    with pytest.raises(ValueError):
        NormalizeThenSum(Grpo(), "max")


def test_cli_normalize_then_sum_mean_and_sum():
    proc = run_er("advantage", "-e", "grpo:std=population,eps=0", "--normalize-then-sum", "mean", input=jsonl(rows()))
    assert proc.returncode == 0, proc.stderr
    out = parse_jsonl(proc.stdout)
    assert [r["advantage"] for r in out] == pytest.approx([-0.1914, 0.9721, 0.5627, -1.3435], abs=5e-5)
    assert out[0]["estimator"] == "normalize-then-mean(grpo:std=population,eps=0)"
    proc = run_er("advantage", "-e", "grpo:std=population,eps=0", "--normalize-then-sum", "sum", input=jsonl(rows()))
    assert [r["advantage"] for r in parse_jsonl(proc.stdout)] == pytest.approx(
        [3 * a for a in [-0.1914, 0.9721, 0.5627, -1.3435]], abs=2e-4)


def test_cli_row_without_components_exits_1_with_its_line_and_bad_mode_exits_2():
    bad = rows()
    del bad[2]["rewards"]
    proc = run_er("advantage", "--normalize-then-sum", "mean", input=jsonl(bad))
    assert proc.returncode == 1 and b":3:" in proc.stderr and b"rewards" in proc.stderr
    proc = run_er("advantage", "--normalize-then-sum", "max", input=jsonl(rows()))
    assert proc.returncode == 2
