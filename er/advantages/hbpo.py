"""`hbpo`: the hierarchical advantage of HBPO (Lyu, Wu et al.; arXiv 2507.15844, paper Alg. 1; code ZJU-REAL/HBPO
`verl/trainer/ppo/core_algos.py`).

The G rollouts of a query are split into budget subgroups (rows with the same `budget`, read per row):

    A_inter_{i,j} = (R_{i,j} - mean(R)) / (std(R) + eps)     over all G rows of the query
                    (verl: unbiased std, eps = 1e-6; a group of one: mean 0, std 1, as `grpo`)
    A_intra_i     = mu_i - f2(b_i),  mu_i = mean of subgroup i's rewards,  f2(b) = beta cos(pi b / (2 L_max))
                    (constant within the subgroup, not normalised, on the raw reward scale)
    A_{i,j}       = A_intra_i + A_inter_{i,j}                                  (paper)

Defaults beta = 4, L_max = 4096: they must match the `hbpo` reward's. `form=paper` (default) uses
math.pi and intra_weight 1. `form=code` is the released `compute_grpo_outcome_advantage`: pi is its
PI_APPROX = 3.1416 in f2 (as the reward's form=code) and intra_weight defaults to 2, because the code
adds A_intra twice; a group of one gets A_intra = 0 there (the code's id2aintra), where the paper form
uses mu - f2(b). Departures from the code: its second addition for a group of one reuses whatever
A_intra the previous row left (a bug; not reproduced), and its trainer calls it without the budget
argument (the released code is not self-consistent). Null rewards are left out of every mean/std
and get advantage 0 (the code has no null rewards). Every row needs an integer `budget` (a data
error otherwise).

Worked (spec §4e): R = [3.9231, 3.8108, 3.6955, 0, 2.8284, 2.4808, 1.5248, 0] with budgets
[512, 512, 1024, 1024, 2048, 2048, 2560, 2560] -> A = [0.9567, 0.8874, -0.9754, -3.2576, 0.1630,
-0.0516, -1.9281, -2.8697] (form=code: [0.9006, 0.8312, -2.8232, -5.1053, -0.0108, -0.2254,
-3.3880, -4.3296]).
"""

from __future__ import annotations

import math

import numpy as np

from er.advantages import ESTIMATORS
from er.advantages.base import Batch, Estimator
from er.advantages.group import Grpo
from er.errors import ErError
from er.rewards.hbpo import PI_APPROX


@ESTIMATORS.register("hbpo")
class Hbpo(Estimator):
    """HBPO: intra-subgroup (budget subgroup mean - f2(b)) plus inter-subgroup GRPO advantage over the whole group (form=code: the code's pi 3.1416, intra added twice; its stale intra on a group of one not reproduced).

    A = (mean_b R - f2(b)) * intra_weight + (R - mean R)/(std R + eps) (unbiased std over the group).
    arXiv 2507.15844 Alg. 1. Defaults beta 4, L_max 4096, form paper (intra_weight 1; form=code: 2).
    """

    extra_fields = ("budget",)
    provenance = "paper"

    def __init__(self, beta: float = 4.0, L_max: int = 4096, intra_weight: float | None = None, eps: float = 1e-6,
                 form: str = "paper"):
        if form not in ("paper", "code"):
            raise ValueError(f"form must be paper or code, not {form!r}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, not {beta}")
        if L_max < 1:
            raise ValueError(f"L_max must be a positive number of tokens, not {L_max}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, not {eps}")
        if intra_weight is None:
            intra_weight = 2.0 if form == "code" else 1.0
        self.beta, self.L_max, self.intra_weight, self.form = beta, L_max, intra_weight, form
        self.pi = PI_APPROX if form == "code" else math.pi
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
        f2 = self.beta * np.cos(self.pi * budget / (2 * self.L_max))
        intra = mu[sub] - f2
        if self.form == "code":  # the code's id2aintra = 0 for a group of one
            in_group = np.repeat(np.add.reduceat(valid.astype(np.float64), batch.starts), batch.sizes)
            intra = np.where(in_group <= 1, 0.0, intra)
        return np.where(valid, self.intra_weight * intra + inter, np.nan)
