"""Normalise-then-sum for multi-reward records (`er advantage --normalize-then-sum mean|sum`).

When a record carries several reward components (`rewards` {name: value or null}, written by
`er score` with more than one `--reward`), normalising their sum lets the component with the widest
spread dominate the advantage. GDPO-style decoupled normalisation instead runs the chosen estimator
on EACH component separately, within its group, and then combines the per-component advantages:

    A_i^k = estimator(r^k)_i              for every component k (e.g. GRPO: (r^k - mean_g) / (std_g + eps))
    A_i   = sum_k A_i^k                   (`sum`)
    A_i   = (1/K) sum_k A_i^k             (`mean`: LongWriter-Zero, arXiv 2506.18841, averages the
                                           advantages of its length, writing and format RMs)

K is the number of components in the records of the call (the union of the `rewards` keys). A null
component (or one a row lacks) is left out of that component's statistics and contributes 0 to the
row's advantage; a row whose combined `reward` is null gets advantage 0, as everywhere. Weights given to `er score` are not applied here:
each component is normalised, so its scale no longer matters. Worked example (spec
length-control-and-eval.md §4(e), population std): r_len = [0.75, 1, 0.8333, 0.3333], r_write =
[0.2, 1.1, 0.9, 0.4], r_fmt = [1, 1, 1, 0] -> A = [-0.1914, 0.9721, 0.5627, -1.3435] (`mean`).
"""

from __future__ import annotations

import math

import numpy as np

from er.advantages.base import Batch


def rewards_problem(record: dict) -> str | None:
    """Why a row cannot be used by normalise-then-sum, or None."""
    parts = record.get("rewards")
    if not isinstance(parts, dict) or not parts:
        return "missing or empty field 'rewards' (normalize-then-sum needs the components `er score` writes)"
    for key, value in parts.items():
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            return f"field 'rewards.{key}' should be a finite number or null, got {value!r}"
    return None


class NormalizeThenSum:
    """Runs an estimator on each reward component and sums (or averages) the advantages."""

    def __init__(self, inner, mode: str = "mean"):
        if mode not in ("mean", "sum"):
            raise ValueError(f"--normalize-then-sum must be mean or sum, not {mode!r}")
        self.inner, self.mode = inner, mode
        self.scope = getattr(inner, "scope", "group")
        self.needs_tokens = getattr(inner, "needs_tokens", False)
        self.extra_fields = tuple(dict.fromkeys((*getattr(inner, "extra_fields", ()), "rewards")))

    def __call__(self, batch: Batch) -> np.ndarray:
        parts = batch.fields["rewards"]
        keys = list(dict.fromkeys(k for p in parts for k in p))
        inner_fields = {k: v for k, v in batch.fields.items() if k != "rewards"} or None
        total = np.zeros(len(batch.reward))
        for key in keys:
            r = np.array([np.nan if p.get(key) is None else p[key] for p in parts], dtype=np.float64)
            adv = self.inner(Batch(r, batch.tokens, batch.correct, batch.starts, inner_fields))
            if isinstance(adv, dict):
                adv = adv["advantage"]
            total += np.where(np.isnan(r) | np.isnan(adv), 0.0, adv)
        if self.mode == "mean" and keys:
            total /= len(keys)
        # a row whose combined reward is null keeps advantage 0 (the runner zeroes NaN)
        return np.where(np.isnan(batch.reward), np.nan, total)
