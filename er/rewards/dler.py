"""DLER truncation rewards: `dler` and `dler-da` (Doing Length pEnalty Right, NVIDIA, arXiv 2510.15110).

`dler` (paper + code):

    R_i = 1[c_i] * 1[l_i <= L_T]                      L_T = 4000 (Nemotron-8B run: 6000)

l_i = `completion_tokens`. The official code never writes this formula: it caps generation at
`max_response_length` = L_T, and a truncated response has no closing `</think>`/boxed answer, so the
DeepScaleR grader scores it 0. Here a row with `finish_reason == "length"` is never correct (the
verifier already enforces it, `er.rewards.verify`; this reward enforces it again for rows that
arrive with `correct` set by someone else), and a finished row longer than L_T scores 0 too, so the
reward is right also when the sampler's cap is larger than L_T.

Optional code-only stop-properly multiplier (`stop_multiplier=kappa`; not in the paper, 0.1 in the
official `recipe/dapo/config/dapo_trainer.yaml`):

    R_i <- R_i * (1[finish_i == stop] + kappa * 1[finish_i != stop])

It is OFF by default (None) because the paper never mentions it; note that with the truncation rule
above a row that did not stop already scores 0, so the multiplier only changes rows whose `correct`
was set upstream although they did not stop. With it on, `finish_reason` is a required field.

`dler-da` (Difficulty-Aware DLER, paper §3.5/§4.1; not in the public code): per group, the
correctness ratio p = mean_i c_i (over rows with a verdict) picks the truncation length from tiers:

    thresholds d_1 > d_2 > ... > d_n, lengths l_1, ..., l_{n+1}:
    L_T(q) = l_k for the first k with p >= d_k, else l_{n+1}

The published setting is `thresholds=0.5, lengths=2000/4000`: L_T = 2000 if p >= 0.5 else 4000.
Reconstructed (the paper does not say): p == threshold falls in the tighter tier (p >= d), and p is
measured on the same rollouts that are then rescored with L_T(q) (single-pass "rescore"), with c
from the verifier on the rollout as generated (at the 4000 cap).
Worked number (spec §1e): l = [900, 1800, 2600, 3500], c = [1, 1, 1, 0] -> p = 0.75, L_T = 2000,
R = [1, 1, 0, 0].

Null `correct` -> null reward (and the row is left out of p).
"""

from __future__ import annotations

from er.rewards import REWARDS
from er.rewards.base import Reward, is_correct, tokens

LENGTH_FIELDS = {"completion": "string", "completion_tokens": "integer"}


def finished_correct(record: dict) -> bool | None:
    """The verdict, with a row that hit the generation cap (finish_reason "length") never correct."""
    c = is_correct(record)
    if c is None:
        return None
    return c and record.get("finish_reason") != "length"


def truncation(record: dict, limit: int) -> float | None:
    """1[c] * 1[l <= limit], and 0 for a row that hit the generation cap."""
    c = finished_correct(record)
    return None if c is None else float(c and tokens(record) <= limit)


def _check_multiplier(value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"stop_multiplier must be in [0, 1] or none, not {value}")


class _Truncation(Reward):
    needs_correct = True
    provenance = "code"

    def _fields(self, stop_multiplier: float | None) -> None:
        self.stop_multiplier = stop_multiplier
        self.fields = dict(LENGTH_FIELDS)
        if stop_multiplier is not None:
            self.fields["finish_reason"] = "string"

    def _scale(self, record: dict, value: float | None) -> float | None:
        if value is None or self.stop_multiplier is None or record.get("finish_reason") == "stop":
            return value
        return value * self.stop_multiplier


@REWARDS.register("dler")
class Dler(_Truncation):
    """DLER truncation: 1 if correct and completion_tokens <= L_T (4000), else 0; optional stop multiplier.

    R = 1[c] * 1[l <= L_T] (* (1 if finish == stop else kappa) with stop_multiplier=kappa); arXiv 2510.15110.
    Defaults: L_T = 4000 (paper Table 4), stop_multiplier off (code-only, 0.1 in the official YAML).
    Departure: rows over L_T that did finish also score 0 (the code relies on the generation cap).
    """

    def __init__(self, L_T: int = 4000, stop_multiplier: float | None = None):
        if L_T < 1:
            raise ValueError(f"L_T must be a positive number of tokens, not {L_T}")
        _check_multiplier(stop_multiplier)
        self.L_T = L_T
        self._fields(stop_multiplier)

    def score_row(self, record: dict) -> float | None:
        return self._scale(record, truncation(record, self.L_T))


@REWARDS.register("dler-da")
class DlerDifficultyAware(_Truncation):
    """DA-DLER: truncation length per group from its correctness ratio (p >= 0.5 -> 2000, else 4000); boundary and single pass reconstructed.

    p = mean_i c_i; L_T = lengths[k] for the first k with p >= thresholds[k], else lengths[-1];
    R = 1[c] * 1[l <= L_T]; arXiv 2510.15110 §3.5. Defaults: thresholds=0.5, lengths=2000/4000.
    Reconstructed: p == threshold takes the tighter tier; single pass (p from the rollouts rescored).
    """

    level = "group"
    provenance = "paper"

    def __init__(self, thresholds: tuple[float, ...] = (0.5,), lengths: tuple[int, ...] = (2000, 4000),
                 stop_multiplier: float | None = None):
        thresholds, lengths = tuple(thresholds), tuple(lengths)
        if not thresholds:
            raise ValueError("thresholds needs at least one value")
        if any(not 0.0 <= d <= 1.0 for d in thresholds):
            raise ValueError(f"thresholds must lie in [0, 1], got {'/'.join(map(str, thresholds))}")
        if any(a <= b for a, b in zip(thresholds, thresholds[1:])):
            raise ValueError("thresholds must be strictly decreasing (tightest tier first), "
                             f"got {'/'.join(map(str, thresholds))}")
        if len(lengths) != len(thresholds) + 1:
            raise ValueError(f"lengths needs one value more than thresholds ({len(thresholds) + 1}), "
                             f"got {len(lengths)}")
        if any(n < 1 for n in lengths):
            raise ValueError(f"lengths must be positive numbers of tokens, got {'/'.join(map(str, lengths))}")
        _check_multiplier(stop_multiplier)
        self.thresholds, self.lengths = thresholds, lengths
        self._fields(stop_multiplier)

    def limit(self, p: float) -> int:
        """L_T(q) for correctness ratio p."""
        for d, n in zip(self.thresholds, self.lengths):
            if p >= d:
                return n
        return self.lengths[-1]

    def __call__(self, group: list[dict]) -> list[float | None]:
        verdicts = [c for c in (finished_correct(r) for r in group) if c is not None]
        if not verdicts:
            return [None] * len(group)
        limit = self.limit(sum(verdicts) / len(verdicts))
        return [self._scale(r, truncation(r, limit)) for r in group]
