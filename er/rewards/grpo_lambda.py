"""`grpo-lambda`: GRPO-lambda, "Stable Reinforcement Learning for Efficient Reasoning"
(Dai, Liu, Si; arXiv 2505.18086). Not the eligibility-trace GRPO-lambda (2510.00194) nor lambda-GRPO.

Sources: the abstract and an independent TL;DR confirm the top-lambda mechanism; the formulas come
from a third-party write-up (spec §2, [secondary]), so provenance is "notes". No official code.

Per batch of B groups (a BATCH-level reward: the scorer buffers `batch_groups` whole groups):

    p_k = mean_i c_k^i                                   correctness ratio of group k
    T   = the first ceil(lam * B) groups by p_k, descending (stable sort: ties keep stream order)
    k in T (efficiency-first):  r_k^i = 1 - alpha * sigmoid((l_k^i - mean_correct l_k) / std_correct l_k)
                                        if c_k^i = 1, else 0          (population std, correct rows only)
    k not in T (accuracy-first): r_k^i = c_k^i

Advantages are plain GRPO (`er advantage -e grpo`).

Defaults: lam = 0.2 (the write-up's example), alpha = 0.6 ([unverified]: one third-party
implementation; no primary source gives alpha), batch_groups = 32 ([reconstructed]: the paper's
batch size is not recoverable; set it to your training batch in prompts, e.g. the
`--batch-groups` of `er advantage`).

Decisions the spec marks [reconstructed]:
- ties in p are broken by a stable sort (stream order);
- a top group with one correct row (or all correct lengths equal) has std 0: z := 0, r = 1 - alpha/2
  (the same value the third-party code gets with std := 1e-4);
- a top group with p = 0 falls back to the 0/1 reward (it has nothing to shorten);
- incorrect rows inside top groups get 0 (the third-party code forgets this; not copied).
Departures: the ranking is over the `batch_groups` groups the scorer buffers (a last, smaller batch
is ranked among itself and counted in the summary); p and the length statistics leave out rows
with a null verdict, which get a null reward. Called on a single group (`reward(group)`, e.g. from
TRL), the batch is that one group, so it is always in T.

Worked (spec §2e, B=3, lam=1/3, alpha=0.6): group 0 (l = 500, 800, 1000, 1700, all correct) is the
top group: r = [0.8538, 0.7668, 0.7000, 0.5020]; groups 1 and 2 keep their 0/1 rewards.
"""

from __future__ import annotations

import math

from er.rewards import REWARDS
from er.rewards.base import Reward
from er.rewards.baselines import correct_length_penalty
from er.rewards.dler import LENGTH_FIELDS, finished_correct


@REWARDS.register("grpo-lambda")
class GrpoLambda(Reward):
    """GRPO-lambda (secondary source; ties, edge cases, batch size reconstructed): top-lambda groups by correctness ratio get 1 - alpha*sigmoid(length z), the rest 0/1.

    p_k = mean c over group k; top ceil(lam B) groups by p (stable): r = 1[c](1 - alpha sigmoid(z)), z over
    the group's correct lengths (population std; z = 0 if std = 0; p = 0 falls back); others r = c.
    arXiv 2505.18086. Defaults lam 0.2, alpha 0.6 (unverified), batch_groups 32 (reconstructed).
    """

    level = "batch"
    needs_correct = True
    fields = LENGTH_FIELDS
    provenance = "notes"

    def __init__(self, lam: float = 0.2, alpha: float = 0.6, batch_groups: int = 32):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], not {lam}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        if batch_groups < 1:
            raise ValueError(f"batch_groups must be >= 1, not {batch_groups}")
        self.lam, self.alpha, self.batch_groups = lam, alpha, batch_groups

    def __call__(self, group: list[dict]) -> list[float | None]:
        return self.score_batch([group])[0]

    def selected(self, ratios: list[float | None]) -> set[int]:
        """Indices of the top ceil(lam * B) groups by ratio (stable; groups with no verdict rank last)."""
        k = math.ceil(self.lam * len(ratios) - 1e-9)
        order = sorted(range(len(ratios)), key=lambda i: -(ratios[i] if ratios[i] is not None else -1.0))
        return set(order[:k])

    def score_batch(self, groups: list[list[dict]]) -> list[list[float | None]]:
        verdicts = [[finished_correct(r) for r in g] for g in groups]
        ratios: list[float | None] = []
        for v in verdicts:
            known = [c for c in v if c is not None]
            ratios.append(sum(known) / len(known) if known else None)
        top = self.selected(ratios)
        out = []
        for i, (group, v) in enumerate(zip(groups, verdicts)):
            if i in top and ratios[i]:
                out.append(correct_length_penalty(group, self.alpha, 0.0))
            else:
                out.append([None if c is None else float(c) for c in v])
        return out
