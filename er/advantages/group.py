"""Group-relative estimators: `grpo`, `dr-grpo`, `rloo`, `none`.

- `grpo` (DeepSeekMath, arXiv 2402.03300): A_i = (R_i - mean_g R) / (std_g R + eps). Default std is
  verl's: unbiased (N-1) with eps = 1e-6, and a group of one gets mean 0, std 1, so A = R / (1 + eps)
  exactly as verl's `compute_grpo_outcome_advantage` (a group whose other rewards are null counts as one).
  `std=population` gives numpy-style population std (TRL uses unbiased with eps 1e-4).
  Worked number: R = [1, 1, 0, 0] gives A = +-0.8660 (unbiased) or +-1.0 (population).
- `dr-grpo` (Dr. GRPO, arXiv 2503.20783): A_i = R_i - mean_g R (no std division).
- `rloo` (Ahmadian et al. 2024): A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean_g R);
  a group of one has no baseline, A = R.
- `none`: A_i = R_i.
Null rewards are left out of the statistics (G counts non-null rows) and get advantage 0.
"""

from __future__ import annotations

import numpy as np

from er.advantages import ESTIMATORS
from er.advantages.base import Batch, Estimator, group_moments


@ESTIMATORS.register("grpo")
class Grpo(Estimator):
    """GRPO: (R - group mean) / (group std + eps); verl's unbiased std and eps=1e-6 by default."""

    def __init__(self, std: str = "unbiased", eps: float = 1e-6):
        if std not in ("unbiased", "population"):
            raise ValueError(f"std must be unbiased or population, not {std!r}")
        if eps < 0:
            raise ValueError("eps must be >= 0")
        self.ddof = 1 if std == "unbiased" else 0
        self.eps = eps

    def __call__(self, batch: Batch) -> np.ndarray:
        mean, std, count = group_moments(batch.reward, batch.starts, self.ddof)
        single = count <= 1  # verl: a group of one has mean 0 and std 1 (and eps is still added)
        mean = np.where(single, 0.0, mean)
        std = np.where(single | np.isnan(std), 1.0, std)
        return (batch.reward - mean) / (std + self.eps)


@ESTIMATORS.register("dr-grpo")
class DrGrpo(Estimator):
    """Dr. GRPO: R - group mean (no std division, removing GRPO's difficulty bias)."""

    def __call__(self, batch: Batch) -> np.ndarray:
        mean, _, count = group_moments(batch.reward, batch.starts, 0)
        return batch.reward - np.where(count <= 1, 0.0, mean)


@ESTIMATORS.register("rloo")
class Rloo(Estimator):
    """RLOO: R_i minus the mean of the other rewards of its group (leave-one-out baseline)."""

    def __call__(self, batch: Batch) -> np.ndarray:
        mean, _, count = group_moments(batch.reward, batch.starts, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            adv = count / np.maximum(count - 1, 1) * (batch.reward - mean)
        return np.where(count <= 1, batch.reward, adv)


@ESTIMATORS.register("none")
class NoBaseline(Estimator):
    """The raw reward as the advantage (REINFORCE without a baseline)."""

    def __call__(self, batch: Batch) -> np.ndarray:
        return batch.reward.copy()
