"""Correctness rewards: `math` (math-verify against the gold `answer`) and `length` (a plain component).

`math` is the verifier reward every length-aware method starts from: R = 1[c], with c decided by
math-verify (see `er.rewards.verify` for gold formats, timeouts and nulls). The scorer runs the
verification in a process pool and writes `correct`; this class turns it into 1.0 / 0.0 / null.
"""

from __future__ import annotations

from er.rewards import REWARDS
from er.rewards.base import Reward, is_correct, tokens


@REWARDS.register("math")
class MathCorrect(Reward):
    """1 if the final answer equals the gold `answer` (math-verify), else 0; null if it cannot be judged."""

    needs_correct = True
    verifies_correct = True
    fields = {"completion": "string"}
    provenance = "code"

    def score_row(self, record: dict) -> float | None:
        c = is_correct(record)
        return None if c is None else float(c)


@REWARDS.register("length")
class Length(Reward):
    """The completion length as a reward component: tokens (default), words or characters, times `scale`."""

    fields = {"completion": "string"}
    provenance = "code"

    def __init__(self, unit: str = "tokens", scale: float = 1.0):
        if unit not in ("tokens", "words", "chars"):
            raise ValueError(f"unit must be tokens, words or chars, not {unit!r}")
        self.unit, self.scale = unit, scale

    def score_row(self, record: dict) -> float | None:
        if self.unit == "tokens":
            n = tokens(record)
        elif self.unit == "words":
            n = len(record["completion"].split())
        else:
            n = len(record["completion"])
        return self.scale * n
