"""`tldr` (reconstructed): 1[correct] - lambda_level * tokens / L_max, worked numbers of spec §1(e)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from er.advantages.base import Batch
from er.advantages.group import Grpo
from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.tldr import Tldr
from tests.helpers import sample_record
from tests.rewards.er_bin import er_score


def row(level, correct, n):
    return {"completion": "x", "completion_tokens": n, "level": level, "correct": correct}


@pytest.mark.parametrize("level, values", [
    ("short", (0.9268, 0.7070, -0.1465)),
    ("medium", (0.9634, 0.8535, -0.0732)),
    ("long", (1.0, 1.0, 0.0)),
])
def test_worked_table_of_the_spec(level, values):
    r = Tldr()
    got = [r.score_row(row(level, True, 1000)), r.score_row(row(level, True, 4000)), r.score_row(row(level, False, 2000))]
    lam = {"short": 0.6, "medium": 0.3, "long": 0.0}[level]
    exact = [1 - lam * 1000 / 8192, 1 - lam * 4000 / 8192, -lam * 2000 / 8192]
    assert got == pytest.approx(exact, abs=1e-6)
    assert got == pytest.approx(values, abs=5e-5)


def test_short_group_rewards_and_population_grpo_advantages_of_the_spec():
    rows = [row("short", True, 1000), row("short", True, 4000), row("short", False, 2000), row("short", False, 6000)]
    rewards = Tldr()(rows)
    assert rewards == pytest.approx([1 - 0.6 * 1000 / 8192, 1 - 0.6 * 4000 / 8192, -0.6 * 2000 / 8192,
                                     -0.6 * 6000 / 8192], abs=1e-6)
    assert rewards == pytest.approx([0.9268, 0.7070, -0.1465, -0.4395], abs=5e-5)
    adv = Grpo(std="population", eps=0.0)(Batch(np.array(rewards), np.zeros(4), np.zeros(4), np.array([0])))
    assert adv == pytest.approx([1.1666, 0.7810, -0.7168, -1.2309], abs=5e-5)


def test_level_is_case_insensitive_and_unknown_level_is_a_data_error():
    assert Tldr().score_row(row(" Short ", True, 0)) == 1.0
    with pytest.raises(ErError, match="short, medium or long"):
        Tldr().score_row(row("tiny", True, 10))


def test_wrong_answers_are_unpenalised_when_asked_and_unjudged_rows_are_null():
    assert Tldr(penalize_wrong=False).score_row(row("short", False, 4000)) == 0.0
    assert Tldr().score_row(row("short", None, 4000)) is None


@pytest.mark.parametrize("kwargs", [{"L_max": 0}, {"lambda_short": -1.0}, {"lambda_short": 0.1, "lambda_medium": 0.3}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Tldr(**kwargs)


def test_registered_reconstructed_group_free_and_needs_correctness():
    cls = REWARDS.get("tldr")
    assert cls is Tldr and cls.provenance == "reconstructed" and cls.needs_correct and cls.level == "row"
    assert "reconstructed" in cls.__doc__.splitlines()[0].lower()


@given(level=st.sampled_from(["short", "medium", "long"]), correct=st.sampled_from([True, False, None]),
       n=st.integers(0, 8192))
def test_property_finite_bounded_and_null_only_when_unjudged(level, correct, n):
    v = Tldr().score_row(row(level, correct, n))
    if correct is None:
        assert v is None
    else:
        assert math.isfinite(v) and -0.6 - 1e-12 <= v <= 1.0
        assert v <= float(correct)


def test_cli_verifies_answers_and_scores_levels(tmp_path):
    rows = [sample_record("g", 0, 2, completion="\\boxed{4}", completion_tokens=1000, level="short"),
            sample_record("g", 1, 2, completion="\\boxed{5}", completion_tokens=2000, level="short")]
    rc, out, err = er_score(tmp_path, rows, "-r", "tldr")
    assert rc == 0, err
    assert [r["correct"] for r in out] == [True, False]
    assert [r["reward"] for r in out] == pytest.approx([1 - 0.6 * 1000 / 8192, -0.6 * 2000 / 8192], abs=1e-9)


def test_cli_missing_level_exits_1_with_the_line(tmp_path):
    rows = [sample_record("a", 0, 1, level="long"), sample_record("b", 0, 1)]
    rc, _, err = er_score(tmp_path, rows, "-r", "tldr")
    assert rc == 1 and ":2:" in err and "level" in err
