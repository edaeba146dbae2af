"""Baseline length rewards the efficient-reasoning papers compare against (spec rl-length-methods §7).

Lengths are `completion_tokens` throughout. Reference group of the worked numbers:
c = [1, 1, 0, 0], l = [1000, 3000, 2000, 4000]. A null `correct` gives a null reward and the row
is left out of every group statistic. A row that hit the generation cap (`finish_reason == "length"`)
is never correct (the verifier enforces this, `er.rewards.verify`).

- `kimi` (Kimi k1.5, arXiv 2501.12599; code: open-r1 `len_reward`), GROUP:
      lambda_i = 0.5 - (l_i - l_min) / (l_max - l_min)   (min/max over the group; all equal -> 0)
      r_len_i = lambda_i if c_i else min(0, lambda_i);  R_i = 1[c_i] + r_len_i  (`add_correct=true`)
  Departures: open-r1 counts characters, this counts tokens (the report's unit); the report's
  gradual warm-up of the penalty is not implemented (scale it with `weight=`).
  Worked: r_len = [0.5, -0.1667, 0, -0.5], R = [1.5, 0.8333, 0, -0.5].
- `cosine` (Yeo et al., "Demystifying Long CoT", arXiv 2502.03373; code eddycmu/demystify-long-cot
  `cosine.py`), ROW: CosFn(t, T, a, b) = b + (a - b)(1 + cos(pi t / T)) / 2;
      R = r_exceed if l >= T or the row hit the cap; CosFn(l, T, r0c, rLc) if correct;
      CosFn(l, T, r0w, rLw) if wrong.  Defaults (official scripts): r0c=2, rLc=1, r0w=-10, rLw=0,
      r_exceed=-10; T = 4096 (the spec's example value).
  Departures: no n-gram repetition penalty on wrong answers and no early-trigger margin before T.
  Worked (T=4096): [1.8600, 1.1665, -5.1840, -0.0135].
- `overlong` (DAPO soft overlong punishment, arXiv 2503.14476; code verl `reward_manager/dapo.py`), ROW:
      pen(l) = 0 if l <= L_max - L_cache; ((L_max - L_cache) - l) / L_cache if l <= L_max; -1 beyond
      R = (+1 if correct else -1) + penalty_factor * pen(l)   (`add_correct=false`: the penalty alone)
  Defaults: L_max = 20480, L_cache = 4096 (paper values, recalled in the spec), penalty_factor = 1.
  Worked (L_max=4096, L_cache=1024): pen = [0, 0, 0, -0.90625], R = [1, 1, -1, -1.90625].
- `l1` (L1 / LCPO, Aggarwal & Welleck, arXiv 2503.04697; code cmu-l3/l1 `math_reward.py`), ROW,
  n_gold = the record's `target_length`:
      mode=exact: R = 1[c] - alpha |n_gold - n|                      alpha = 0.0003 (run_l1_exact.sh)
      mode=max:   R = 1[c] * clip(alpha (n_gold - n) + delta, 0, 1)  delta = 0.5
  The code's Max form 1[c] max(0, (clip(a'(n_gold - n), -1, 1) + 1) / 2) is this with alpha = a'/2.
  Unverified: the alpha of the released L1-Max run is not pinned (config default a' = 0.01, i.e.
  alpha = 0.005); the default here is 0.0003 for both modes, as in the spec's example.
  Worked (n_gold=2000): exact [0.7, 0.7, 0.0, -0.6]; max [0.8, 0.2, 0, 0].
- `thinkprune` (Hou et al., arXiv 2504.01296; code UCSB-NLP-Chang/ThinkPrune), ROW:
      R = 1[c and l <= L], L = 4000 (iterative pruning: then 3000, then 2000; one stage per run here).
  Worked (L=3000): [1, 1, 0, 0].
- `efficient` (Arora & Zanette, arXiv 2502.04463; code Zanette-Labs/efficient-reasoning
  `reward_server/math_server.py`), GROUP, statistics over the group's correct rows, population std:
      R_i = 1[c_i] (1 - alpha * sigmoid((l_i - mean_correct l) / (std_correct l + 1e-7)))
  alpha = 0.1 (script default; the paper sweeps 0.05-0.4). Responses without EOS score 0.
  Worked (alpha=0.1): [0.9731, 0.9269, 0, 0].
"""

from __future__ import annotations

import math

from er.rewards import REWARDS
from er.rewards.base import Reward, is_correct, tokens
from er.rewards.dler import LENGTH_FIELDS, finished_correct, truncation


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def correct_length_penalty(group: list[dict], alpha: float, eps: float) -> list[float | None]:
    """Arora & Zanette's in-group form, shared with GRPO-lambda:

    R_i = 1[c_i] (1 - alpha * sigmoid(z_i)),  z_i = (l_i - mean_correct) / (std_correct + eps)

    population std over the group's correct rows; z = 0 when std + eps == 0 (one correct row or all
    correct lengths equal). Null verdicts -> None and out of the statistics.


    R = 1[c] (1 - alpha sigmoid((l - mean_correct)/(std_correct + 1e-7))), population std over the group's
    correct rows. arXiv 2502.04463. Default alpha 0.1 (script default). Rows without EOS score 0.
    """
    verdicts = [finished_correct(r) for r in group]
    lengths = [tokens(r) for r in group]
    ok = [n for n, c in zip(lengths, verdicts) if c]
    if ok:
        mean = sum(ok) / len(ok)
        std = math.sqrt(sum((n - mean) ** 2 for n in ok) / len(ok))
    out: list[float | None] = []
    for n, c in zip(lengths, verdicts):
        if c is None:
            out.append(None)
        elif not c:
            out.append(0.0)
        else:
            z = (n - mean) / (std + eps) if std + eps > 0 else 0.0
            out.append(1.0 - alpha * sigmoid(z))
    return out


@REWARDS.register("kimi")
class Kimi(Reward):
    """Kimi k1.5 group length reward: 0.5 - (l - min)/(max - min), capped at 0 for wrong rows, plus 1[c]; tokens.

    lambda = 0.5 - (l - l_min)/(l_max - l_min) (0 if all equal); r = lambda if c else min(0, lambda);
    R = 1[c] + r (add_correct). arXiv 2501.12599. Departures: tokens, not open-r1's characters; no warm-up.
    """

    level = "group"
    needs_correct = True
    fields = LENGTH_FIELDS
    provenance = "code"

    def __init__(self, add_correct: bool = True):
        self.add_correct = add_correct

    def __call__(self, group: list[dict]) -> list[float | None]:
        verdicts = [finished_correct(r) for r in group]
        lengths = [tokens(r) for r, c in zip(group, verdicts) if c is not None]
        if not lengths:
            return [None] * len(group)
        lo, hi = min(lengths), max(lengths)
        out: list[float | None] = []
        for r, c in zip(group, verdicts):
            if c is None:
                out.append(None)
                continue
            lam = 0.0 if hi == lo else 0.5 - (tokens(r) - lo) / (hi - lo)
            value = lam if c else min(0.0, lam)
            out.append(value + (float(c) if self.add_correct else 0.0))
        return out


def cos_fn(t: float, T: float, a: float, b: float) -> float:
    """b + (a - b)(1 + cos(pi t / T)) / 2: a at t = 0, b at t = T."""
    return b + 0.5 * (a - b) * (1.0 + math.cos(math.pi * t / T))


@REWARDS.register("cosine")
class Cosine(Reward):
    """Yeo et al. cosine length-scaled reward: correct 2 -> 1, wrong -10 -> 0 over [0, T], -10 past T (T=4096).

    R = r_exceed if l >= T (or truncated); else b + (a - b)(1 + cos(pi l / T))/2 with (a, b) = (r0c, rLc) if
    correct, (r0w, rLw) if wrong. arXiv 2502.03373. Defaults from the official scripts (T = 4096: spec example).
    Departures: no n-gram repetition penalty, no early-trigger margin.
    """

    needs_correct = True
    fields = LENGTH_FIELDS
    provenance = "code"

    def __init__(self, T: int = 4096, r0c: float = 2.0, rLc: float = 1.0, r0w: float = -10.0, rLw: float = 0.0,
                 r_exceed: float = -10.0):
        if T < 1:
            raise ValueError(f"T must be a positive number of tokens, not {T}")
        self.T, self.r0c, self.rLc, self.r0w, self.rLw, self.r_exceed = T, r0c, rLc, r0w, rLw, r_exceed

    def score_row(self, record: dict) -> float | None:
        c = is_correct(record)
        if c is None:
            return None
        n = tokens(record)
        if n >= self.T or record.get("finish_reason") == "length":
            return self.r_exceed
        return cos_fn(n, self.T, self.r0c, self.rLc) if c else cos_fn(n, self.T, self.r0w, self.rLw)


@REWARDS.register("overlong")
class Overlong(Reward):
    """DAPO soft overlong punishment: linear from 0 to -1 over the last L_cache tokens before L_max, plus +-1 correctness.

    pen = 0 if l <= L_max - L_cache; ((L_max - L_cache) - l)/L_cache if l <= L_max; -1 beyond.
    R = (+1 if correct else -1) + penalty_factor * pen (add_correct=false: pen alone). arXiv 2503.14476.
    Defaults: L_max 20480, L_cache 4096 (paper values as recalled in the spec).
    """

    fields = LENGTH_FIELDS
    provenance = "code"

    def __init__(self, L_max: int = 20480, L_cache: int = 4096, penalty_factor: float = 1.0, add_correct: bool = True):
        if L_max < 1:
            raise ValueError(f"L_max must be a positive number of tokens, not {L_max}")
        if not 0 < L_cache <= L_max:
            raise ValueError(f"L_cache must be in (0, L_max], not {L_cache}")
        if penalty_factor < 0:
            raise ValueError(f"penalty_factor must be >= 0, not {penalty_factor}")
        self.L_max, self.L_cache, self.penalty_factor, self.add_correct = L_max, L_cache, penalty_factor, add_correct
        self.needs_correct = add_correct

    def penalty(self, n: int) -> float:
        start = self.L_max - self.L_cache
        if n <= start:
            return 0.0
        return (start - n) / self.L_cache if n <= self.L_max else -1.0

    def score_row(self, record: dict) -> float | None:
        value = self.penalty_factor * self.penalty(tokens(record))
        if not self.add_correct:
            return value
        c = finished_correct(record)
        return None if c is None else value + (1.0 if c else -1.0)


@REWARDS.register("l1")
class L1(Reward):
    """L1/LCPO target-length reward from `target_length`: exact 1[c] - a|n_gold - n|, or max 1[c] clip(a(n_gold - n) + 0.5, 0, 1).

    exact: R = 1[c] - alpha |n_gold - n|; max: R = 1[c] clip(alpha (n_gold - n) + delta, 0, 1); n_gold =
    `target_length`. arXiv 2503.04697. Defaults: alpha 0.0003 (run_l1_exact.sh), delta 0.5. Unverified: the
    released L1-Max alpha (code config 0.01 on its own scale, i.e. alpha 0.005 here).
    """

    needs_correct = True
    fields = {**LENGTH_FIELDS, "target_length": "integer"}
    provenance = "code"

    def __init__(self, mode: str = "exact", alpha: float = 0.0003, delta: float = 0.5):
        if mode not in ("exact", "max"):
            raise ValueError(f"mode must be exact or max, not {mode!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, not {alpha}")
        self.mode, self.alpha, self.delta = mode, alpha, delta

    def score_row(self, record: dict) -> float | None:
        c = finished_correct(record)
        if c is None:
            return None
        gold, n = record["target_length"], tokens(record)
        if self.mode == "exact":
            return float(c) - self.alpha * abs(gold - n)
        return float(c) * min(1.0, max(0.0, self.alpha * (gold - n) + self.delta))


@REWARDS.register("thinkprune")
class ThinkPrune(Reward):
    """ThinkPrune hard limit: 1 if correct and completion_tokens <= L (4000; prune stages 3000, 2000), else 0.

    R = 1[c and l <= L] (a truncated row is wrong). arXiv 2504.01296. Default L = 4000 (then 3000, 2000 by
    hand: one stage per run).
    """

    needs_correct = True
    fields = LENGTH_FIELDS
    provenance = "code"

    def __init__(self, L: int = 4000):
        if L < 1:
            raise ValueError(f"L must be a positive number of tokens, not {L}")
        self.L = L

    def score_row(self, record: dict) -> float | None:
        return truncation(record, self.L)


@REWARDS.register("efficient")
class Efficient(Reward):
    """Arora & Zanette: 1[c] (1 - alpha sigmoid(z)), z = length z-score among the group's correct rows (alpha 0.1)."""

    level = "group"
    needs_correct = True
    fields = LENGTH_FIELDS
    provenance = "code"

    def __init__(self, alpha: float = 0.1):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        self.alpha = alpha

    def __call__(self, group: list[dict]) -> list[float | None]:
        return correct_length_penalty(group, self.alpha, 1e-7)
