"""`drpo`: Decoupled Reward Policy Optimization (Li, Chen, Lin, Yang; arXiv 2510.04474; code Optimization-AI/DRPO
`verl/verl/trainer/ppo/core_algos.py`).

DRPO has no scalar per-token advantage: its loss (DisCO-style) pushes positives (reward 1) up with
length weights computed among the positives only, and negatives (reward 0) down through a
log-sum-exp. This estimator computes the GROUP part, the closed-form positive weights

    w_i = exp(-l_i / (L lambda)) / sum_{j in P_q} exp(-l_j / (L lambda)),   i in P_q (correct rows)

(the code writes exp((1 - l_i/L)/lambda); the constant cancels), l_i = `completion_tokens`,
L = the padded response capacity (`max_response_length`, 8192), lambda = 0.1 (lambda -> inf is DisCO),
and writes, on every row, the fields the loss (`er update`) reads:

- `drpo_weight` (number): w_i for a positive of a contributing group, else 0.0;
- `drpo_negative` (bool): true for a negative of a contributing group (the loss applies
  -tau log mean_{j in N_q} exp(s_j / tau) over these rows of the group), else false;
- `advantage` (number, for compatibility): dJ_q/ds_i at the behaviour policy, i.e. w_i for
  positives and -softmax_j(s_old_j / tau) for negatives, with s_old = mean of the row's behaviour
  `logprobs` when every negative of the group carries them, else the uniform -1/|N_q|; 0 for rows
  that do not contribute. A sequence-mean policy-gradient loss on this advantage has DRPO's gradient
  at the first update of a step (ratio 1); the real DRPO loss recomputes the negatives' softmax
  and adds the KL trust region (beta [K - delta]_+ K, beta = 1e3, delta = 1e-4).

A group contributes only when it has both a positive and a negative; the loss still divides by the
number of all questions Q in the batch (count the distinct `group_id`s). Rewards must be exactly 1
or 0 (the code's masks are ==1 / ==0; score with `--reward math` or `dler`); anything else is a data
error; null rewards do not contribute. `objective()` is a numpy reference of J_q for tests/losses.

Worked (spec §5e, L=8192, lambda=0.1, tau=10): correct lengths [1000, 2000, 7800] -> w = [0.77204,
0.22777, 0.00019]; with s+ = [-0.30, -0.35, -0.50], s- = [-0.40, -0.60, -0.90]: J_q = 0.3198 and
dJ/ds- = [-0.3411, -0.3344, -0.3245].
"""

from __future__ import annotations

import math

import numpy as np

from er.advantages import ESTIMATORS
from er.advantages.base import Batch, Estimator
from er.errors import ErError


def objective(weights, s_pos, s_neg, tau: float = 10.0) -> float:
    """J_q = sum_i w_i s_i^+ - tau log mean_j exp(s_j^- / tau)."""
    s_neg = np.asarray(s_neg, dtype=np.float64) / tau
    m = s_neg.max()
    lse = m + math.log(np.exp(s_neg - m).mean())
    return float(np.dot(weights, s_pos) - tau * lse)


def _group_softmax(logits: np.ndarray, mask: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """softmax of `logits` within each group over the rows where `mask` (0 elsewhere)."""
    masked = np.where(mask, logits, -np.inf)
    top = np.maximum.reduceat(masked, starts)
    top = np.repeat(np.where(np.isfinite(top), top, 0.0), sizes)
    e = np.where(mask, np.exp(np.where(mask, logits, 0.0) - top), 0.0)
    total = np.repeat(np.add.reduceat(e, starts), sizes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, e / np.where(total > 0, total, 1.0), 0.0)


@ESTIMATORS.register("drpo")
class Drpo(Estimator):
    """DRPO: closed-form length weights over each group's correct rows (drpo_weight) and negatives marked for the loss (drpo_negative).

    w_i = softmax over the group's correct rows of -l_i/(L lambda); writes drpo_weight, drpo_negative and a
    compatibility advantage (w_i, or -softmax(s_old/tau) for negatives). arXiv 2510.04474. Defaults from
    run_drpo_1.5b_8k.sh: lambda 0.1, L 8192, tau 10. Rewards must be 0/1.
    """

    needs_tokens = True
    extra_fields = ("logprobs",)
    provenance = "code"

    def __init__(self, lam: float = 0.1, L: int = 8192, tau: float = 10.0):
        if lam <= 0:
            raise ValueError(f"lam must be > 0, not {lam}")
        if L < 1:
            raise ValueError(f"L must be a positive number of tokens, not {L}")
        if tau <= 0:
            raise ValueError(f"tau must be > 0, not {tau}")
        self.lam, self.L, self.tau = lam, L, tau

    def __call__(self, batch: Batch) -> dict[str, np.ndarray]:
        r = batch.reward
        odd = ~np.isnan(r) & (r != 0) & (r != 1)
        if odd.any():
            raise ErError(f"drpo needs rewards of exactly 1 or 0, got {r[odd][0]!r} "
                          "(score with a 0/1 reward such as --reward math)")
        starts, sizes = batch.starts, batch.sizes
        pos, neg = r == 1, r == 0
        if len(r) == 0:
            empty = np.zeros(0)
            return {"advantage": empty, "drpo_weight": empty, "drpo_negative": np.zeros(0, dtype=bool)}
        n_pos = np.repeat(np.add.reduceat(pos.astype(np.int64), starts), sizes)
        n_neg = np.repeat(np.add.reduceat(neg.astype(np.int64), starts), sizes)
        live = (n_pos > 0) & (n_neg > 0)
        pos, neg = pos & live, neg & live
        weight = _group_softmax(-batch.tokens / (self.L * self.lam), pos, starts, sizes)
        s_old = self._behaviour_scores(batch, neg)
        soft = _group_softmax(s_old / self.tau, neg, starts, sizes)
        advantage = np.where(pos, weight, 0.0) - soft
        return {"advantage": np.where(np.isnan(r), np.nan, advantage), "drpo_weight": weight, "drpo_negative": neg}

    def _behaviour_scores(self, batch: Batch, neg: np.ndarray) -> np.ndarray:
        """Mean behaviour log-prob per row; a group whose negatives do not all carry `logprobs` gets 0s (uniform)."""
        logprobs = (batch.fields or {}).get("logprobs") or [None] * len(batch.reward)
        s = np.zeros(len(batch.reward))
        have = np.zeros(len(batch.reward), dtype=bool)
        for i in np.flatnonzero(neg):
            lp = logprobs[i]
            if isinstance(lp, list) and lp and all(isinstance(x, (int, float)) for x in lp):
                s[i], have[i] = sum(lp) / len(lp), True
        gi = batch.group_index()
        missing = np.bincount(gi, weights=(neg & ~have).astype(np.float64), minlength=len(batch.starts)) > 0
        return np.where(missing[gi], 0.0, s)
