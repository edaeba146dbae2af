"""The estimator contract, vectorised over a batch of contiguous groups.

An estimator is a class whose typed `__init__` keyword arguments are its parameters, called as

    estimator(batch: Batch) -> np.ndarray   # one advantage per row

`Batch` holds numpy arrays for the rows of whole groups: `reward` (NaN = null), `tokens`
(completion tokens), `correct` (1, 0, or NaN), and `starts` (the offset of each group). Null rewards
are left out of every statistic; the runner sets their advantage to 0. `scope` says how many groups a
call must see: "group" estimators are exact on any chunk of whole groups; "batch" estimators
(DLER's whitening) normalise over the `--batch-groups` groups they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass
class Batch:
    reward: np.ndarray  # float64 [rows], NaN where null
    tokens: np.ndarray  # float64 [rows]
    correct: np.ndarray  # float64 [rows]: 1, 0 or NaN
    starts: np.ndarray  # int64 [groups], offsets of the groups (starts[0] == 0)
    fields: dict | None = None  # extra per-row columns an estimator asked for (`extra_fields`)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.reward)))

    def group_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.starts)), self.sizes)


class Estimator:
    scope: ClassVar[str] = "group"
    needs_tokens: ClassVar[bool] = False
    extra_fields: ClassVar[tuple[str, ...]] = ()
    provenance: ClassVar[str] = "code"

    def __call__(self, batch: Batch) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def group_moments(values: np.ndarray, starts: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row group mean, std (with `ddof`) and count over the non-NaN entries of each group.

    Groups with no valid entry get mean 0; groups with fewer than ddof+1 valid entries get std NaN.
    """
    valid = ~np.isnan(values)
    v = np.where(valid, values, 0.0)
    count = np.add.reduceat(valid.astype(np.float64), starts) if len(values) else np.zeros(0)
    total = np.add.reduceat(v, starts) if len(values) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    sizes = np.diff(np.append(starts, len(values)))
    mean_row = np.repeat(mean, sizes)
    sq = np.where(valid, (values - mean_row) ** 2, 0.0)
    ss = np.add.reduceat(sq, starts) if len(values) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(count > ddof, np.sqrt(ss / np.maximum(count - ddof, 1)), np.nan)
    return mean_row, np.repeat(std, sizes), np.repeat(count, sizes)
