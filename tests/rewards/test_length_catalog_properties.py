"""Properties every reward of the length catalog keeps over random groups (hypothesis):
finite or null outputs within known bounds, null verdict -> null, a truncated row never scores as
correct, and, for the length-monotone rewards, a shorter correct completion never scores below a
longer correct one of the same group."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from er.rewards import REWARDS

# name, params, (low, high), length-monotone?, needs a null verdict -> null
CATALOG = [
    ("dler", {}, (0, 1), True),
    ("dler-da", {}, (0, 1), True),
    ("dler-da", {"thresholds": (0.75, 0.25), "lengths": (500, 1500, 6000)}, (0, 1), True),
    ("grpo-lambda", {"lam": 0.5}, (0, 1), True),
    ("hapo", {}, (-1, 2), True),
    ("hapo", {"type_lr": "linear"}, (-1, 2), True),
    ("hapo", {"mode": "mean"}, (-1, 2), True),
    ("hbpo", {}, (-1, 4), True),
    ("hbpo", {"form": "code"}, (-1, 4), False),
    ("crf", {}, (0, 2), False),
    ("kimi", {}, (-0.5, 1.5), True),
    ("cosine", {}, (-10, 2), True),
    ("overlong", {"L_max": 4096, "L_cache": 1024}, (-2, 1), True),
    ("l1", {}, (-math.inf, 1), False),
    ("l1", {"mode": "max"}, (0, 1), True),
    ("thinkprune", {}, (0, 1), True),
    ("efficient", {}, (0, 1), True),
]
IDS = [f"{n}:{','.join(f'{k}={v}' for k, v in p.items())}" for n, p, _, _ in CATALOG]

row = st.fixed_dictionaries({
    "completion_tokens": st.integers(0, 9000),
    "correct": st.sampled_from([True, False, None]),
    "finish_reason": st.sampled_from(["stop", "stop", "length"]),
    "conciseness": st.floats(0.1, 1.0),
    "step": st.integers(0, 2000),
    "target_length": st.integers(100, 4000),  # the group's (per prompt): the first row's is used
})
groups = st.lists(row, min_size=1, max_size=8)


def records(rows: list[dict], budget: int = 1024) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        out.append({"id": "q", "group_id": "q", "sample_idx": i, "completion": "<think>x</think> \\boxed{1}",
                    "completion_tokens": r["completion_tokens"], "correct": r["correct"],
                    "finish_reason": r["finish_reason"], "conciseness": r["conciseness"],
                    "policy": {"model": "m", "step": r["step"]}, "target_length": rows[0]["target_length"],
                    "budget": budget})
    return out


def run(name: str, params: dict, group: list[dict], history: int | None = 1500) -> list:
    reward = REWARDS.get(name)(**params)
    if name == "hapo" and history is not None:
        reward.history["q"] = [history, 1]
    if getattr(reward, "level", "row") == "batch":
        return reward.score_batch([group])[0]
    return reward(group)


@pytest.mark.parametrize("name,params,bounds,monotone", CATALOG, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(rows=groups, budget=st.sampled_from([512, 1024, 2048, 2560]), history=st.one_of(st.none(), st.integers(1, 5000)))
def test_outputs_are_finite_bounded_and_null_exactly_where_the_verdict_is_null(name, params, bounds, monotone, rows,
                                                                               budget, history):
    group = records(rows, budget)
    values = run(name, params, group, history)
    assert len(values) == len(group)
    for rec, v in zip(group, values):
        if rec["correct"] is None:
            assert v is None
            continue
        assert v is not None and math.isfinite(v)
        assert bounds[0] - 1e-9 <= v <= bounds[1] + 1e-9


@pytest.mark.parametrize("name,params,bounds,monotone", CATALOG, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(rows=groups, budget=st.sampled_from([512, 1024, 2048, 2560]))
def test_a_truncated_row_scores_as_if_it_were_wrong(name, params, bounds, monotone, rows, budget):
    group = records(rows, budget)
    as_wrong = [dict(r, correct=False) if r["finish_reason"] == "length" and r["correct"] else dict(r) for r in group]
    assert run(name, params, group) == run(name, params, as_wrong)


@pytest.mark.parametrize("name,params,bounds,monotone", [c for c in CATALOG if c[3]], ids=[i for i, c in zip(IDS, CATALOG) if c[3]])
@settings(max_examples=60, deadline=None)
@given(rows=groups, budget=st.sampled_from([512, 1024, 2048, 2560]))
def test_a_shorter_correct_completion_never_scores_below_a_longer_one(name, params, bounds, monotone, rows, budget):
    group = records(rows, budget)
    values = run(name, params, group)
    ok = [(r["completion_tokens"], v) for r, v in zip(group, values)
          if r["correct"] and r["finish_reason"] == "stop" and not (name == "hbpo" and r["completion_tokens"] > 4096)]
    for n1, v1 in ok:
        for n2, v2 in ok:
            if n1 < n2:
                assert v1 >= v2 - 1e-12, (n1, v1, n2, v2)
