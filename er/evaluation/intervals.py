"""95% intervals for the plot of `er eval --plot`: Wilson for an accuracy, bootstrap for a mean length.

Wilson score interval (Wilson 1927) for c successes in n trials, z = 1.96:
    centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n),  p = c/n
(it stays inside [0, 1] and is not degenerate at p = 0 or 1, unlike the normal interval).
Mean length: percentile bootstrap, B = 1000 resamples with a fixed seed (0), so a figure is
reproducible; above 20 000 values the normal interval mean ± z·s/√n is used instead (our choice: the
two agree to the pixel there, and the bootstrap would cost B·n draws). Samples of one problem are
treated as independent (the intervals are then somewhat narrow when G > 1).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_MAX_N = 20_000


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """(low, high) of the Wilson score interval for correct/n; None when n is 0."""
    if n <= 0:
        return None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values, seed: int = 0) -> tuple[float, float] | None:
    """(low, high) 95% interval of the mean of `values` (see the module doc); None when empty."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        return None
    if n == 1:
        return float(x[0]), float(x[0])
    if n > BOOTSTRAP_MAX_N:
        half = Z95 * float(x.std(ddof=1)) / math.sqrt(n)
        return float(x.mean()) - half, float(x.mean()) + half
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
