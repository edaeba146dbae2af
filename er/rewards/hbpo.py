"""`hbpo`: the budget-aware reward of Hierarchical Budget Policy Optimization (Lyu, Wu et al.; arXiv 2507.15844;
code ZJU-REAL/HBPO `rllm/rewards/math_reward.py`).

Each row carries the token budget b it was prompted with (the record's `budget`, integer; the
sampler's budget prefill "<think> I will answer the question with b tokens" puts it there).
n = `completion_tokens`, L_max = 4096 (the training context), beta = 4, alpha = 1/L_max:

    f1(n, b) = beta cos(pi n / (2 L_max)) - alpha |n - b|
    f2(b)    = beta cos(pi b / (2 L_max))

Paper form (`form=paper`, the DEFAULT: it is the method as published, the spec says to implement it,
and its worked numbers use it):

    R = f1(n, b) if correct and b < n <= L_max;  f2(b) if correct and n <= b;  0 otherwise

Code form (`form=code`; also a commented-out draft in the paper's LaTeX), the released
`RewardMathFn` exactly:

    R = min(f1(n, b), f2(b)) if correct and n <= L_max;  0 if wrong;  -1 on a format error
    with pi replaced by the code's PI_APPROX = 3.1416 in f1 and f2 (up to 3e-5 from math.pi).
    Format (checked before correctness): the completion must contain `</think>`, and the text between
    the FIRST and the second `</think>` (the rest of the text when there is one) must end its last
    `\\boxed` as a complete `\\boxed{...}` (the code's last_boxed_only_string + remove_boxed); else -1.
    An empty `\\boxed{}` passes the format check and is graded wrong (0) whatever `correct` says, as
    the code's grader never matches an empty answer. The paper scores format errors 0.

The two differ only for very short answers under small budgets (b=512, n=100: paper 3.9231, code
3.8965), on format errors and by PI_APPROX. Departures (both forms): the code recovers b from the
completion text with a regex and falls back to b := 4096 / round(beta cos(pi n/8192), 2) when none
is found; here `budget` is a required field, and a row without it is a data error naming its line.
A row that hit the generation cap is never correct. The advantage is the `hbpo` estimator
(`er advantage -e hbpo`, with the same `form`), whose beta and L_max must match these.

Property of the paper's formula (kept as published): f1 turns negative just below L_max when b < L_max
(f1(4096, 512) = -0.875) while n > L_max scores 0, so the reward is length-monotone for n <= L_max only.

f2 values: f2(512) = 3.9231, f2(1024) = 3.6955, f2(2048) = 2.8284, f2(2560) = 2.2223.
Worked (spec §4e): (b, n, c) = (512, 400, 1) -> 3.9231; (512, 700, 1) -> 3.8108; (1024, 900, 1) -> 3.6955;
(1024, 1300, 0) -> 0; (2048, 1500, 1) -> 2.8284; (2048, 2300, 1) -> 2.4808; (2560, 3000, 1) -> 1.5248;
(2560, 4200, 1) -> 0 (> L_max).
"""

from __future__ import annotations

import math

from er.rewards import REWARDS
from er.rewards.base import Reward, tokens
from er.rewards.dler import finished_correct
from er.rewards.structure import last_boxed

PI_APPROX = 3.1416  # the released code's pi, in its reward and its advantage


def f1(n: float, b: float, beta: float = 4.0, L_max: int = 4096, alpha: float | None = None,
       pi: float = math.pi) -> float:
    a = 1.0 / L_max if alpha is None else alpha
    return beta * math.cos(pi * n / (2 * L_max)) - a * abs(n - b)


def f2(b: float, beta: float = 4.0, L_max: int = 4096, pi: float = math.pi) -> float:
    return beta * math.cos(pi * b / (2 * L_max))


def code_answer(text: str) -> str | None:
    """The released code's answer: the last `\\boxed{...}` between the first and second `</think>`,
    None (a format error) when there is no `</think>`, no `\\boxed`, or the last one is not complete."""
    parts = text.split("</think>")
    if len(parts) < 2:
        return None
    segment = parts[1]
    start = segment.rfind("\\boxed")
    if start < 0 or not segment.startswith("\\boxed{", start):
        return None
    return last_boxed(segment[start:])


@REWARDS.register("hbpo")
class Hbpo(Reward):
    """HBPO budget-aware reward from the row's `budget`: flat f2(b) within budget, f1 cosine decay beyond (paper form; form=code: the code's min(f1, f2), pi 3.1416, -1 on format errors); departure: b from `budget`, not a text regex.

    f1 = beta cos(pi n/(2 L_max)) - alpha |n - b|, f2 = beta cos(pi b/(2 L_max)); paper: R = f2 if correct and
    n <= b, f1 if correct and b < n <= L_max, else 0; code: min(f1, f2) with pi = 3.1416, -1 when the text
    between the first and second `</think>` has no complete last `\\boxed{}`, 0 for an empty `\\boxed{}`.
    arXiv 2507.15844. Defaults beta 4, L_max 4096, alpha 1/L_max.
    """

    needs_correct = True
    fields = {"completion": "string", "completion_tokens": "integer", "budget": "integer"}
    provenance = "paper"

    def __init__(self, beta: float = 4.0, L_max: int = 4096, alpha: float | None = None, form: str = "paper"):
        if L_max < 1:
            raise ValueError(f"L_max must be a positive number of tokens, not {L_max}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, not {beta}")
        if alpha is not None and alpha < 0:
            raise ValueError(f"alpha must be >= 0 (default 1/L_max), not {alpha}")
        if form not in ("paper", "code"):
            raise ValueError(f"form must be paper or code, not {form!r}")
        self.beta, self.L_max, self.alpha, self.form = beta, L_max, alpha, form

    def score_row(self, record: dict) -> float | None:
        pi = math.pi
        if self.form == "code":
            pi = PI_APPROX
            answer = code_answer(record["completion"])
            if answer is None:
                return -1.0
            if not answer.strip():
                return 0.0  # the code's grader: an empty answer never matches
        c = finished_correct(record)
        if c is None:
            return None
        n, b = tokens(record), record["budget"]
        if not c or n > self.L_max:
            return 0.0
        fb = f2(b, self.beta, self.L_max, pi)
        fn = f1(n, b, self.beta, self.L_max, self.alpha, pi)
        if self.form == "code":
            return min(fn, fb)
        return fn if n > b else fb
