"""`batch`: DLER's batch-wise reward normalisation (REINFORCE++-baseline), arXiv 2510.15110 Eq. 3.

    c_i = R_i - mean_{j in g(i)} R_j                      (a group of one uses mean 0)
    mu  = sum_i l_i c_i / sum_i l_i                        (token-weighted over the batch)
    var = N/(N-1) * sum_i l_i (c_i - mu)^2 / sum_i l_i,    N = sum_i l_i  (Bessel on tokens)
    A_i = (c_i - mu) / sqrt(var + 1e-8)

l_i is the completion length in tokens: verl whitens over all valid response tokens of the
(filtered) batch, which is this token weighting; no per-group std division. The batch is the
`--batch-groups` groups the runner hands over (DLER: 512 prompts after dynamic sampling).

Options:
- `weighting=sequences`: unweighted, unbiased whitening over sequences (the paper's sequence-level
  reading; worked table row 1);
- `boost=b` (default 0): A_i += b * 1[R_i >= boost_threshold - 1e-5] (threshold 1), the code-only
  advantage boost of the official `verl-dler/dler_slurm.sh` (0.1 there; `boost_high_score_advantages`
  in its `dp_actor.py`, on the row's score, not on a separate correctness flag); the paper never
  mentions it, so it is off by default. A correct row past L_T scores 0 under `dler` and is not
  boosted, as in the code (where such a row is cut at L_T and fails the grader).
  Departure: the code's score is the reward before DLER's optional stop-properly multiplier; er sees
  only the reward after it, so a row scaled by that multiplier (a correct row that did not stop and
  was not cut by the cap: rare, since `dler` already scores rows with finish_reason "length" 0) is
  not boosted here.

Worked numbers (spec §1e, two groups after dynamic sampling): A = 1.7550, 1.7550, -0.8376, -0.8376,
2.4032, -0.1894, -0.1894, -0.1894 (mu = -0.17694, sigma = 0.38572).
"""

from __future__ import annotations

import numpy as np

from er.advantages import ESTIMATORS
from er.advantages.base import Batch, Estimator
from er.advantages.group import DrGrpo


@ESTIMATORS.register("batch")
class BatchWhitened(Estimator):
    """DLER / REINFORCE++-baseline: group-mean centring, then token-weighted whitening over the batch; boost=b adds b where R >= 1 (code: score before the stop multiplier)."""

    scope = "batch"
    needs_tokens = True

    def __init__(self, weighting: str = "tokens", boost: float = 0.0, boost_threshold: float = 1.0, eps: float = 1e-8):
        if weighting not in ("tokens", "sequences"):
            raise ValueError(f"weighting must be tokens or sequences, not {weighting!r}")
        self.weighting, self.boost, self.boost_threshold, self.eps = weighting, boost, boost_threshold, eps

    def __call__(self, batch: Batch) -> np.ndarray:
        centred = DrGrpo()(batch)  # group-mean centring
        valid = ~np.isnan(centred)
        if self.weighting == "tokens":
            w = np.where(valid, batch.tokens, 0.0)
        else:
            w = valid.astype(np.float64)
        n = w.sum()
        c = np.where(valid, centred, 0.0)
        if n <= 1:
            adv = np.zeros_like(c)
        else:
            mu = (w * c).sum() / n
            var = (w * (c - mu) ** 2).sum() / n * n / (n - 1)
            adv = (c - mu) / np.sqrt(var + self.eps)
        if self.boost:
            # the code's test, with its 1e-5 slack for float scores
            adv = adv + self.boost * (batch.reward >= self.boost_threshold - 1e-5)
        return np.where(valid, adv, np.nan)
