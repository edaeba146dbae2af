"""Final-answer extraction for majority voting (maj@k in `er eval`).

Two extractors (`--extract`):
- `math-verify` (the default when the package imports): math-verify's `parse` (the same extractor
  `er score` verifies with, and lighteval's maj@n uses), so "1/2", "0.5" and "\\frac{1}{2}" vote
  together. The vote key is the string form of the first parsed object (a sympy expression), else
  its extracted text. Speed-up: when the completion has a `\\boxed{...}`, the last boxed content X is
  parsed as `$\\boxed{X}$` and cached per distinct X (math-verify ranks a boxed answer first anyway),
  so a vote costs ~1 µs after the first occurrence of an answer instead of ~3 ms.
- `boxed`: the content of the last `\\boxed{...}` (balanced braces, `\\fbox` too), spaces removed.
  The fallback when math-verify is not installed.
`letter`: the multiple-choice letter (A–J) of "answer is (B)" / "Answer: B" / a boxed letter,
for GPQA-style presets.
A completion with no extractable answer does not vote.
"""

from __future__ import annotations

import functools
import re

from er.rewards.structure import last_boxed

_BOXED = ("\\boxed{", "\\fbox{")
_LETTER = re.compile(r"(?:answer\s*(?:is|:)\s*\(?|\\boxed\{\s*\(?)([A-J])\b", re.IGNORECASE)


def boxed_key(text: str) -> str | None:
    content = last_boxed(text, _BOXED)
    if content is None:
        return None
    key = "".join(content.split())
    return key or None


def letter_key(text: str) -> str | None:
    found = _LETTER.findall(text)
    return found[-1].upper() if found else None


def _mv_key(parsed) -> str | None:
    if not parsed:
        return None
    return str(parsed[0])


@functools.lru_cache(maxsize=65536)
def _mv_boxed(content: str) -> str | None:
    from math_verify import parse

    try:
        return _mv_key(parse(f"$\\boxed{{{content}}}$", parsing_timeout=5))
    except Exception:  # noqa: BLE001 - an unparseable answer simply does not vote
        return None


def math_verify_key(text: str) -> str | None:
    content = last_boxed(text, _BOXED)
    if content is not None:
        return _mv_boxed(content) or None
    from math_verify import parse

    try:
        return _mv_key(parse(text, parsing_timeout=5))
    except Exception:  # noqa: BLE001
        return None


def math_verify_available() -> bool:
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return False
    return True


def extractor(name: str):
    """`auto` | `math-verify` | `boxed` | `letter` -> (resolved name, function text -> key or None)."""
    from er.errors import UsageError

    if name == "auto":
        name = "math-verify" if math_verify_available() else "boxed"
    table = {"math-verify": math_verify_key, "boxed": boxed_key, "letter": letter_key}
    if name not in table:
        raise UsageError(f"--extract must be auto, math-verify, boxed or letter, not {name!r}")
    return name, table[name]
