"""The story of a step: what the rows an optimizer step trained on say about the run.

`er update`'s metrics record carries, per step and over the rows of that step (after dynamic sampling and
rejects), the quantities TRL and verl log every step (`rewards/mean`, `completions/mean_length`,
`completions/clipped_ratio`, ...) so a run's curves need no second pass over the rollouts:

- `reward_std`: population standard deviation of the non-null `reward`s (`reward_mean` is already in
  the record); `rewards_mean`: the mean of each `rewards` component by name (null components left out).
- `accuracy`: share of `correct == true` among rows whose `correct` is a boolean; `correct_null`: rows
  whose `correct` is null or absent (counted apart, never as wrong). Null when no row has a verdict.
- `completion_tokens_median` / `completion_tokens_p90`: over the completion tokens trained on (the same
  count as `completion_tokens_mean`); p90 is numpy's linear-interpolation percentile.
- `truncated_frac`: share of rows with `finish_reason == "length"` among rows that carry a
  `finish_reason` (verl's `response_length/clip_ratio`, TRL's `completions/clipped_ratio`).
- `think_tokens_mean`: mean of the non-null `think_tokens` (null when no row has one).
- `dropped_groups`: groups `--dynamic-sampling` dropped upstream, read from the rows' `dropped_groups`
  field (see er/advantaging.py; each kept group carries the count of groups dropped just before it).
- `policy_lag_mean` / `policy_lag_max`: (step the update starts from) - `policy.step` of each row, so a
  sample drawn from the very weights being updated has lag 0. A null `policy.step` (sampled from the
  model named on the command line, not a `step-N` checkpoint) counts as step 0 (reconstructed choice:
  the base the run started from). Null when no row carries `policy`.

Facts are extracted on the reading rank (`row_facts`, a small tuple per row, cheap to broadcast) and
summarised where the step is known (`step_story`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class RowFacts(NamedTuple):
    reward: float | None
    correct: bool | None
    finish_reason: str | None
    think_tokens: int | None
    rewards: dict | None
    policy_step: int | None
    has_policy: bool
    dropped_groups: int


def _number(x: Any) -> float | None:
    if type(x) in (int, float) and math.isfinite(x):
        return float(x)
    return None


def row_facts(record: dict) -> RowFacts:
    """The few fields of a training row the story reads."""
    policy = record.get("policy")
    has_policy = isinstance(policy, dict)
    step = policy.get("step") if has_policy else None
    rewards = record.get("rewards")
    if isinstance(rewards, dict):
        rewards = {str(k): _number(v) for k, v in rewards.items()}
    else:
        rewards = None
    correct = record.get("correct")
    think = record.get("think_tokens")
    dropped = record.get("dropped_groups")
    return RowFacts(
        reward=_number(record.get("reward")),
        correct=correct if type(correct) is bool else None,
        finish_reason=record.get("finish_reason") if isinstance(record.get("finish_reason"), str) else None,
        think_tokens=think if type(think) is int else None,
        rewards=rewards,
        policy_step=step if type(step) is int else None,
        has_policy=has_policy,
        dropped_groups=dropped if type(dropped) is int and dropped > 0 else 0,
    )


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def step_story(facts: list[RowFacts], first_of_group: list[bool], completion_tokens: list[int],
               start_step: int) -> dict:
    """The story fields of one step (module doc). `first_of_group[i]` marks the first row of each group
    (a group's rows all carry the same `dropped_groups`); `start_step` is the step the update starts from."""
    import numpy as np

    rewards = [f.reward for f in facts if f.reward is not None]
    mean = _mean(rewards)
    verdicts = [f.correct for f in facts if f.correct is not None]
    finishes = [f.finish_reason for f in facts if f.finish_reason is not None]
    thinks = [f.think_tokens for f in facts if f.think_tokens is not None]
    components: dict[str, list[float]] = {}
    for f in facts:
        for name, v in (f.rewards or {}).items():
            components.setdefault(name, [])
            if v is not None:
                components[name].append(v)
    lags = [start_step - (f.policy_step or 0) for f in facts if f.has_policy]
    lengths = np.asarray(completion_tokens, dtype=np.float64)
    return {
        "reward_std": (math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
                       if rewards else None),
        "rewards_mean": {k: _mean(v) for k, v in components.items()} if components else None,
        "accuracy": sum(verdicts) / len(verdicts) if verdicts else None,
        "correct_null": len(facts) - len(verdicts),
        "completion_tokens_median": float(np.median(lengths)) if lengths.size else None,
        "completion_tokens_p90": float(np.percentile(lengths, 90)) if lengths.size else None,
        "truncated_frac": sum(r == "length" for r in finishes) / len(finishes) if finishes else None,
        "think_tokens_mean": _mean(thinks),
        "dropped_groups": sum(f.dropped_groups for f, first in zip(facts, first_of_group) if first),
        "policy_lag_mean": _mean(lags),
        "policy_lag_max": max(lags) if lags else None,
    }


def batch_story(batch, start_step: int) -> dict:
    """`step_story` of a StepBatch (er/train/data.py), the trainer's hook."""
    if not batch.facts:
        return {}
    exs = batch.examples
    first = [i == 0 or exs[i].group != exs[i - 1].group for i in range(len(exs))]
    return step_story(batch.facts, first, [e.completion_len for e in exs], start_step)
