"""`tldr`: TLDR's level-conditioned length-regularised reward (reconstructed), arXiv 2505.07961.

Zhang et al., "Making Small Language Models Efficient Reasoners: Intervention, Supervision,
Reinforcement" (2025). TLDR is GRPO with r' = r - penalty(L), where the prompt names a length level
(short, medium or long) and each level has its own penalty strength. Only the abstract and a short
secondary summary were readable (spec length-control-and-eval.md §1, tagged [RECON]): the formula
below and every constant are RECONSTRUCTED placeholders, not the paper's verified method.

    r_i = 1[c_i] - lambda_level * L_i / L_max                       (reconstructed)

- c_i: the verifier's verdict (`correct`, set by the scorer from `answer`);
- L_i: completion length in TOKENS (`completion_tokens`); L_max: the generation cap;
- lambda_level from the record's `level` field: short > medium > long >= 0.

Defaults (the spec's test placeholders, reconstructed): lambda_short=0.6, lambda_medium=0.3,
lambda_long=0.0, L_max=8192; `penalize_wrong=True` applies the penalty to wrong answers too (the
spec's worked table does; the paper does not say). With `penalize_wrong=false` a wrong answer scores
0. Worked numbers (short level, L_max 8192): correct L=1000 -> 0.92676, correct L=4000 -> 0.70703,
wrong L=2000 -> -0.14648.

Departures / choices: the level names are matched case-insensitively after stripping; an unknown
level is a data error; a row whose correctness cannot be judged scores null; lengths above L_max are
not clipped (the sampler's cap makes them impossible).
"""

from __future__ import annotations

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward, is_correct, tokens


@REWARDS.register("tldr")
class Tldr(Reward):
    """TLDR (reconstructed): 1[correct] - lambda_level * tokens / L_max, level short|medium|long from `level`."""

    needs_correct = True
    fields = {"completion": "string", "completion_tokens": "integer", "level": "string"}
    provenance = "reconstructed"

    def __init__(self, lambda_short: float = 0.6, lambda_medium: float = 0.3, lambda_long: float = 0.0,
                 L_max: int = 8192, penalize_wrong: bool = True):
        if L_max <= 0:
            raise ValueError(f"L_max must be > 0, got {L_max}")
        lams = (lambda_short, lambda_medium, lambda_long)
        if any(lam < 0 for lam in lams):
            raise ValueError("the lambdas must be >= 0")
        if not lambda_short >= lambda_medium >= lambda_long:
            raise ValueError("the lambdas must satisfy lambda_short >= lambda_medium >= lambda_long")
        self.lambdas = {"short": lambda_short, "medium": lambda_medium, "long": lambda_long}
        self.L_max = L_max
        self.penalize_wrong = penalize_wrong

    def score_row(self, record: dict) -> float | None:
        level = str(record["level"]).strip().lower()
        lam = self.lambdas.get(level)
        if lam is None:
            raise ErError(f"field 'level' should be short, medium or long, got {record['level']!r}")
        n = tokens(record)
        c = is_correct(record)
        if c is None:
            return None
        if not c and not self.penalize_wrong:
            return 0.0
        return float(c) - lam * n / self.L_max
