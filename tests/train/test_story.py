"""The metrics record tells the run's story: reward, accuracy, length, truncation, dropped groups, policy lag."""

from __future__ import annotations

import pytest

from er.schema import errors as schema_errors
from er.train.story import row_facts, step_story
from tests.train.helpers import read_jsonl, run_er, write_jsonl


def _row(reward, correct, finish, think=None, step=None, rewards=None, dropped=None, policy=True):
    r = {"reward": reward, "correct": correct, "finish_reason": finish}
    if think is not None:
        r["think_tokens"] = think
    if policy:
        r["policy"] = {"model": "m", "step": step}
    if rewards is not None:
        r["rewards"] = rewards
    if dropped is not None:
        r["dropped_groups"] = dropped
    return r


def test_step_story_on_hand_computed_values():
    rows = [
        _row(1.0, True, "stop", think=10, step=3, rewards={"acc": 1.0, "len": 0.5}, dropped=2),
        _row(0.0, False, "length", think=30, step=3, rewards={"acc": 0.0, "len": None}, dropped=2),
        _row(None, None, "stop", step=1, rewards={"acc": None, "len": -0.5}, dropped=0),
        _row(0.5, True, "length", step=None, rewards={"acc": 1.0, "len": 0.0}, dropped=0),
    ]
    first = [True, False, True, False]  # two groups of two
    story = step_story([row_facts(r) for r in rows], first, [10, 20, 30, 40], start_step=4)
    # rewards 1, 0, .5: mean .5, population variance (.25 + .25 + 0) / 3
    assert story["reward_std"] == pytest.approx((0.5 / 3) ** 0.5)
    assert story["rewards_mean"] == {"acc": pytest.approx(2 / 3), "len": pytest.approx(0.0)}
    assert story["accuracy"] == pytest.approx(2 / 3) and story["correct_null"] == 1
    assert story["completion_tokens_median"] == 25.0
    assert story["completion_tokens_p90"] == pytest.approx(37.0)  # 30 + 0.7 * (40 - 30)
    assert story["truncated_frac"] == 0.5
    assert story["think_tokens_mean"] == 20.0
    assert story["dropped_groups"] == 2  # counted once per group, not once per row
    # lags: 4-3, 4-3, 4-1, 4-0 (null step = the base model, step 0)
    assert story["policy_lag_mean"] == pytest.approx(9 / 4) and story["policy_lag_max"] == 4


def test_rows_without_the_fields_give_nulls_not_zeros():
    story = step_story([row_facts({"completion": "x"})], [True], [5], start_step=0)
    for key in ("reward_std", "rewards_mean", "accuracy", "truncated_frac", "think_tokens_mean",
                "policy_lag_mean", "policy_lag_max"):
        assert story[key] is None, key
    assert story["correct_null"] == 1 and story["dropped_groups"] == 0
    assert story["completion_tokens_median"] == 5.0


def test_dynamic_sampling_marks_each_kept_group_with_the_groups_dropped_before_it(tmp_path, capsys):
    rows = []
    for g, rewards in enumerate([[1, 1], [0, 0], [0, 1], [1, 1], [1, 1], [1, 0]]):
        for i, r in enumerate(rewards):
            rows.append({"group_id": f"g{g}", "group_size": 2, "sample_idx": i, "completion": "x",
                         "reward": float(r)})
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    code, err = run_er(["advantage", "--dynamic-sampling", src, "-o", out], capsys)
    assert code == 0, err
    kept = read_jsonl(out)
    assert [(r["group_id"], r["dropped_groups"]) for r in kept] == [("g2", 2), ("g2", 2), ("g5", 2), ("g5", 2)]
    for r in kept:
        assert schema_errors(r, "advantaged") == []


def test_update_metrics_carry_the_story_of_the_rows(tiny_model, tmp_path, capsys):
    rows = []
    # step 1: groups g0 (1 dropped before it) and g1; step 2: g2 (sampled two steps behind)
    for g in range(3):
        for i in range(2):
            rows.append({"id": f"p{g}", "prompt": f"{g} + 1 =", "group_id": f"g{g}", "group_size": 2,
                         "sample_idx": i, "completion": " 1" + " 0" * (i + g), "completion_tokens": 1 + i + g,
                         "finish_reason": "length" if i else "stop", "reward": float(i), "correct": bool(i),
                         "advantage": 1.0 - 2 * i, "policy": {"model": tiny_model, "step": None},
                         "dropped_groups": 1 if g == 0 else 0})
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "metrics.jsonl"
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "4", src,
                        "-o", out], capsys)
    assert code == 0, err
    m1, m2 = read_jsonl(out)
    for m in (m1, m2):
        assert schema_errors(m, "metrics") == []
        assert m["reward_std"] == 0.5 and m["accuracy"] == 0.5 and m["truncated_frac"] == 0.5
        assert m["correct_null"] == 0 and m["think_tokens_mean"] is None and m["rewards_mean"] is None
    assert m1["dropped_groups"] == 1 and m2["dropped_groups"] == 0
    # step 1 starts from step 0 (the base, lag 0); step 2 starts from step 1 but its rows came from the base
    assert (m1["policy_lag_mean"], m1["policy_lag_max"]) == (0, 0)
    assert (m2["policy_lag_mean"], m2["policy_lag_max"]) == (1, 1)
    assert m1["completion_tokens_median"] == pytest.approx(m1["completion_tokens_mean"])
