"""`hbpo`: the hierarchical advantage of HBPO (Lyu, Wu et al.; arXiv 2507.15844, paper Alg. 1; code ZJU-REAL/HBPO
`verl/trainer/ppo/core_algos.py`).

The G rollouts of a query are split into budget subgroups (rows with the same `budget`, read per row):

    A_inter_{i,j} = (R_{i,j} - mean(R)) / (std(R) + eps)     over all G rows of the query
                    (verl: unbiased std, eps = 1e-6; a group of one: mean 0, std 1, as `grpo`)
    A_intra_i     = mu_i - f2(b_i),  mu_i = mean of subgroup i's rewards,  f2(b) = beta cos(pi b / (2 L_max))
                    (constant within the subgroup, not normalised, on the raw reward scale)
    A_{i,j}       = A_intra_i + A_inter_{i,j}                                  (paper)

Defaults beta = 4, L_max = 4096: they must match the `hbpo` reward's. `intra_weight=2` reproduces
the released code, which adds A_intra twice (and is called there without the budget argument, so the
released code is not self-consistent); the paper form (1) is the default. Null rewards are left out
of every mean/std and get advantage 0. Every row needs an integer `budget` (a data error otherwise).

Worked (spec §4e): R = [3.9231, 3.8108, 3.6955, 0, 2.8284, 2.4808, 1.5248, 0] with budgets
[512, 512, 1024, 1024, 2048, 2048, 2560, 2560] -> A = [0.9567, 0.8874, -0.9754, -3.2576, 0.1630,
-0.0516, -1.9281, -2.8697] (released code: [0.9006, 0.8312, -2.8232, -5.1053, -0.0108, -0.2255,
-3.3880, -4.3296]).
"""

from __future__ import annotations

import numpy as np

from er.advantages import ESTIMATORS
from er.advantages.base import Batch, Estimator
from er.advantages.group import Grpo
from er.errors import ErError


@ESTIMATORS.register("hbpo")
class Hbpo(Estimator):
    """HBPO: intra-subgroup (budget subgroup mean - f2(b)) plus inter-subgroup GRPO advantage over the whole group.

    A = (mean_b R - f2(b)) * intra_weight + (R - mean R)/(std R + eps) (unbiased std over the group).
    arXiv 2507.15844 Alg. 1. Defaults beta 4, L_max 4096, intra_weight 1 (paper; 2 = the released code).
    """

    extra_fields = ("budget",)
    provenance = "paper"

    def __init__(self, beta: float = 4.0, L_max: int = 4096, intra_weight: float = 1.0, eps: float = 1e-6):
        if beta <= 0:
            raise ValueError(f"beta must be > 0, not {beta}")
        if L_max < 1:
            raise ValueError(f"L_max must be a positive number of tokens, not {L_max}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, not {eps}")
        self.beta, self.L_max, self.intra_weight = beta, L_max, intra_weight
        self.inter = Grpo(std="unbiased", eps=eps)

    def budgets(self, batch: Batch) -> np.ndarray:
        values = (batch.fields or {}).get("budget") or [None] * len(batch.reward)
        for i, b in enumerate(values):
            if type(b) is not int:
                gid = int(np.searchsorted(batch.starts, i, side="right")) - 1
                raise ErError(f"row {i - int(batch.starts[gid]) + 1} of group {gid + 1} in this batch has "
                              f"{'no' if b is None else 'a non-integer'} 'budget' (hbpo needs each row's budget)")
        return np.asarray(values, dtype=np.float64)

    def __call__(self, batch: Batch) -> np.ndarray:
        budget = self.budgets(batch)
        inter = self.inter(batch)
        # subgroups = (group, budget) pairs; their means over non-null rewards
        _, sub = np.unique(np.stack([batch.group_index().astype(np.float64), budget]), axis=1, return_inverse=True)
        sub = sub.ravel()
        valid = ~np.isnan(batch.reward)
        total = np.bincount(sub, weights=np.where(valid, batch.reward, 0.0))
        count = np.bincount(sub, weights=valid.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = total / count
        f2 = self.beta * np.cos(np.pi * budget / (2 * self.L_max))
        intra = mu[sub] - f2
        return np.where(valid, self.intra_weight * intra + inter, np.nan)
