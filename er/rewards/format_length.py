"""`format-length`: the label-free Format-Length surrogate reward, arXiv 2505.19439 (code).

Xin et al. (Baichuan), "Surrogate Signals from Format and Length: Reinforcement Learning for Solving
Mathematical Problems without Ground Truth Answers" (2025); read from the released reward function
(insightLLM/rl-without-gt, rl/verl/lib/src/rewards/math_reward.py; spec length-control-and-eval.md
§3, [CODE]). No gold answer is read.

    f_soft = 1 if the completion contains `<think> ... </think>` (regex, spans newlines), else 0
    f_ans  = 1 if the parsed final answer is non-empty and parses as math, else 0
    x = n / L_max, n = completion length in TOKENS (`completion_tokens`)
    R_len(x) = 1 - (1 - x/p)^2               for x <= p   (rises fast, 1 at x = p)
             = 1 - 2 ((x - p) / (1 - p))^2   for x > p    (falls faster and faster, -1 at x = 1)
    r = 0.5 (f_soft + f_ans) + R_len(x)   if f_ans = 1
      = min(0, R_len(x))                  if f_ans = 0

Defaults (the training script): L_max=3072 (max_response_length), p=0.5, soft_format=true. Worked
numbers (f_soft = 0): n=768 -> 1.25, n=1536 -> 1.5, n=3072 -> -0.5 (f_ans=1) / -1.0 (f_ans=0).

Final-answer parsing (as the code's evaluator): the last `<answer>...</answer>` block if any, taking
the last `\\boxed{...}` inside it, else its last `\\(...\\)` span, else the block itself (stripped of
whitespace and `$`); without an answer tag, the last `\\boxed{...}` after the final `</think>` (or in
the whole completion); else "".

Departures: the code checks f_ans with sympy's parser (after replacing a single "=" with "=="),
which evaluates the text; here completions are untrusted, so the check is math-verify's LaTeX/
expression parser (no eval): plain numbers are accepted without parsing, anything else is parseable
when math-verify returns a parsed expression (it handles "=" itself). A parser timeout scores null.
`soft_format=false` drops f_soft (the README notes f_soft is always 0 under the Qwen-math template).
Like the code, x is not clipped at 1 (the sampler's cap makes n > L_max impossible).
"""

from __future__ import annotations

import functools
import re

from er.rewards import REWARDS
from er.rewards.base import Reward, tokens
from er.rewards.structure import boxed_contents

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_PAREN = re.compile(r"\\\((.*?)\\\)", re.S)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def last_balanced_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces close (an earlier one when the last is unfinished),
    or None."""
    contents = list(boxed_contents(text))
    return contents[-1] if contents else None


def has_think_span(text: str) -> bool:
    """The regex `<think>.*?</think>` (spanning newlines) matches: a `<think>` with a `</think>` after it."""
    start = text.find("<think>")
    return start != -1 and text.find("</think>", start + 7) != -1


def final_answer(text: str) -> str:
    blocks = _ANSWER.findall(text) if "<answer>" in text else None
    if blocks:
        block = blocks[-1]
        boxed = last_balanced_boxed(block)
        if boxed is not None:
            return boxed.strip()
        spans = _PAREN.findall(block)
        if spans:
            return spans[-1].strip()
        return block.strip().strip("$").strip()
    end = text.rfind("</think>")
    boxed = last_balanced_boxed(text if end == -1 else text[end + 8:])
    return "" if boxed is None else boxed.strip()


@functools.lru_cache(maxsize=65536)
def parseable(answer: str, timeout: int = 5) -> bool | None:
    """Does the answer parse as math? Plain numbers: yes without parsing. None on a parser timeout."""
    if not answer:
        return False
    if _NUMBER.fullmatch(answer):
        return True
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from math_verify.errors import TimeoutException

    try:
        result = parse(f"${answer}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                       parsing_timeout=timeout, raise_on_error=True)
    except TimeoutException:
        return None
    except Exception:  # noqa: BLE001 - any parser failure means "not parseable"
        return False
    # math-verify returns [expression, text] when it parsed, [text] when it only fell back to the text.
    return any(not isinstance(x, str) for x in result)


def length_curve(x: float, p: float) -> float:
    if x <= p:
        return 1.0 - (1.0 - x / p) ** 2
    return 1.0 - 2.0 * ((x - p) / (1.0 - p)) ** 2


@REWARDS.register("format-length")
class FormatLength(Reward):
    """Label-free surrogate (code): 0.5*(think-format + parseable answer) + length curve peaking at p*L_max tokens."""

    fields = {"completion": "string", "completion_tokens": "integer"}
    provenance = "code"

    def __init__(self, L_max: int = 3072, p: float = 0.5, soft_format: bool = True, timeout: int = 5):
        if L_max <= 0:
            raise ValueError(f"L_max must be > 0, got {L_max}")
        if not 0 < p < 1:
            raise ValueError(f"p must be in (0, 1), got {p}")
        if timeout < 1:
            raise ValueError("timeout must be >= 1 second")
        self.L_max, self.p, self.soft_format, self.timeout = L_max, p, soft_format, timeout

    def score_row(self, record: dict) -> float | None:
        n = tokens(record)
        text = record["completion"]
        r_len = length_curve(n / self.L_max, self.p)
        f_ans = parseable(final_answer(text), self.timeout)
        if f_ans is None:
            return None
        if not f_ans:
            return min(0.0, r_len)
        f_soft = 1.0 if self.soft_format and has_think_span(text) else 0.0
        return 0.5 * (f_soft + 1.0) + r_len
