"""`long-short` (reconstructed): adaptive long/short group reward, worked numbers of spec §2(e)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from er.advantages.base import Batch
from er.advantages.group import Grpo
from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.long_short import LongShort
from tests.helpers import sample_record
from tests.rewards.er_bin import er_score


def group(long_correct, short_correct):
    return ([{"completion": "x", "mode": "long", "correct": c} for c in long_correct]
            + [{"completion": "x", "mode": "short", "correct": c} for c in short_correct])


def test_worked_example_prefers_short_on_equal_accuracy():
    rewards = LongShort()(group([1, 1, 1, 0], [1, 1, 0, 1]))
    assert rewards == [1.0, 1.0, 1.0, 0.0, 1.5, 1.5, 0.0, 1.5]
    adv = Grpo(std="population", eps=0.0)(Batch(np.array(rewards), np.zeros(8), np.zeros(8), np.array([0])))
    assert adv == pytest.approx([0.1072, 0.1072, 0.1072, -1.6082, 0.9649, 0.9649, -1.6082, 0.9649], abs=5e-5)


def test_long_is_preferred_when_it_is_more_accurate_beyond_tau():
    assert LongShort()(group([1, 1, 1, 1], [1, 0, 0, 1])) == [1.5] * 4 + [1.0, 0.0, 0.0, 1.0]
    # with tau = 0.5 short is still preferred: 0.5 >= 1.0 - 0.5
    assert LongShort(tau=0.5)(group([1, 1, 1, 1], [1, 0, 0, 1])) == [1.0] * 4 + [1.5, 0.0, 0.0, 1.5]


def test_mode_is_detected_from_the_completion_prefix_without_a_mode_field():
    rows = [{"completion": " <long>think hard", "correct": True}, {"completion": "<short>quick", "correct": True}]
    assert LongShort()(rows) == [1.0, 1.5]
    with pytest.raises(ErError, match="cannot tell the reasoning mode"):
        LongShort()([{"completion": "plain", "correct": True}])
    with pytest.raises(ErError, match="long or short"):
        LongShort()([{"completion": "x", "mode": "medium", "correct": True}])


def test_unjudged_rows_are_null_and_left_out_of_the_accuracies():
    # long: judged [1] (acc 1), short: judged [0, 1] (acc 0.5) -> long preferred
    rows = group([1, None], [0, 1])
    assert LongShort()(rows) == [1.5, None, 0.0, 1.0]


def test_a_group_with_one_mode_prefers_that_mode():
    assert LongShort()(group([1, 0], [])) == [1.5, 0.0]


@pytest.mark.parametrize("kwargs", [{"R_hi": 1.0, "R_lo": 1.0}, {"R_lo": 0.0}, {"tau": -0.1}, {"long_prefix": ""}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        LongShort(**kwargs)


def test_registered_as_a_reconstructed_group_reward():
    cls = REWARDS.get("long-short")
    assert cls.level == "group" and cls.provenance == "reconstructed" and cls.needs_correct


@given(st.lists(st.tuples(st.sampled_from(["long", "short"]), st.sampled_from([True, False, None])),
                min_size=1, max_size=16))
def test_property_values_are_from_the_reward_set_and_null_iff_unjudged(rows):
    out = LongShort()([{"completion": "x", "mode": m, "correct": c} for m, c in rows])
    assert len(out) == len(rows)
    for (_, c), v in zip(rows, out):
        assert (v is None) == (c is None)
        if c is not None:
            assert v in ((1.5, 1.0) if c else (0.0,))


def test_cli_scores_whole_groups_and_refuses_a_row_without_mode(tmp_path):
    rows = [sample_record("g", i, 4, mode=m, completion=c)
            for i, (m, c) in enumerate([("long", "\\boxed{4}"), ("long", "\\boxed{3}"),
                                        ("short", "\\boxed{4}"), ("short", "\\boxed{4}")])]
    rc, out, err = er_score(tmp_path, rows, "-r", "long-short")
    assert rc == 0, err
    assert [r["reward"] for r in out] == [1.0, 0.0, 1.5, 1.5]
    bad = [sample_record("h", 0, 1, completion="\\boxed{4}", mode="long"),
           sample_record("k", 0, 1, completion="\\boxed{4}")]
    rc, _, err = er_score(tmp_path, bad, "-r", "long-short")
    assert rc == 1 and ":2:" in err and "mode" in err
