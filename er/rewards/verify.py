"""Answer checking with math-verify, shared by the `math` reward and every reward that needs
correctness (DLER, Kimi, ...), and by `er eval --reward`.

Gold answers come in the forms real datasets give them: GSM8K (`... #### 1,234` or a plain number),
MATH-500 bare LaTeX (`\\frac{3}{4}`, `(1,2]`, `\\text{(C)}`), AIME integers. A bare gold is wrapped
in `$...$` so the LaTeX parser sees it as math. Completions are parsed with math-verify's defaults
(`\\boxed{}` first, then the last expression). Completions are untrusted text: they only ever reach
math-verify's parser (ANTLR LaTeX grammar and a guarded expression parser), never `eval`/`sympify`.

A completion that hit the token cap (`finish_reason == "length"`) is never correct: as in the
DeepScaleR grader DLER uses, an unfinished answer scores 0 (the `require_stop` option).

Results: True / False, or a `Null(reason)` when the row cannot be judged: unparseable gold, a timeout
(the item's hard deadline in `er.pool`), or a parser error. Nulls are counted, never turned into 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

_NUMBER = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass(frozen=True)
class Null:
    reason: str


def normalize_gold(answer: Any) -> str:
    text = str(answer).strip()
    if "####" in text:  # GSM8K solution text: the answer follows the last ####
        text = text.rsplit("####", 1)[1].strip()
    if _NUMBER.match(text):  # 1,234 -> 1234 (a comma is a thousands separator here, not a tuple)
        text = text.replace(",", "")
    if "$" not in text and "\\boxed" not in text:
        text = f"${text}$"
    return text


def _timeout_s(timeout: float) -> int:
    # math-verify takes whole seconds (signal.alarm); the hard deadline lives in er.pool.
    return max(1, math.ceil(timeout))


def parse_gold(answer: Any, timeout: float = 5.0):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return Null("no gold answer")
    try:
        gold = parse(normalize_gold(answer), extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                     parsing_timeout=_timeout_s(timeout), raise_on_error=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "cannot judge"
        return Null(f"gold unparseable ({type(exc).__name__})")
    return gold if gold else Null("gold unparseable")


def check(gold, completion: str, timeout: float = 5.0) -> bool | Null:
    """Is `completion`'s final answer equal to the parsed gold?"""
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    if isinstance(gold, Null):
        return gold
    try:
        pred = parse(completion, parsing_timeout=_timeout_s(timeout), raise_on_error=True)
        if not pred:
            return False  # no answer in the completion: judged wrong, not unknown
        return bool(verify(gold, pred, timeout_seconds=_timeout_s(timeout), raise_on_error=True))
    except TimeoutException:
        return Null("timeout")
    except Exception as exc:  # noqa: BLE001
        return Null(f"verifier error ({type(exc).__name__})")


def unverified_parts(records: list[dict]) -> list[list[int]]:
    """Indices of the records with no `correct` yet, split by gold answer.

    One part per group in practice, so each group's gold is parsed once.
    """
    parts: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        if "correct" not in record:
            parts.setdefault(repr(record["answer"]), []).append(i)
    return list(parts.values())


def group_payload(records: list[dict], timeout: float) -> tuple[Any, list[tuple[str, bool]], float]:
    """`check_group`'s payload for records sharing one gold answer."""
    return records[0]["answer"], [(r["completion"], r.get("finish_reason") != "length") for r in records], timeout


def check_group(payload: tuple[Any, list[tuple[str, bool]], float]) -> Iterator[bool | Null]:
    """Worker entry: `(answer, [(completion, finished), ...], timeout)`; gold parsed once per group."""
    answer, items, timeout = payload
    gold = parse_gold(answer, timeout)
    for completion, finished in items:
        if not finished:
            yield False
        else:
            yield check(gold, completion, timeout)


def resume_group(payload, k: int):
    answer, items, timeout = payload
    return answer, items[k:], timeout


def group_size(payload) -> int:
    return len(payload[1])
