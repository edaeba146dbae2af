"""`format`: does the completion follow the think-then-answer structure?

R = 1 when the completion has exactly one `think_end` (default `</think>`), a non-empty thought
before it (after an optional `think_start`, required with `require_start=true`), and after it an
answer in the chosen form: `boxed` (`\\boxed{...}`, balanced braces), `tag` (`<answer>...</answer>`),
or `none` (any non-empty text). Otherwise 0. This is the structure check of DeepSeek-R1-style
format rewards and of the label-free format reward; it never reads the gold answer.
"""

from __future__ import annotations

import re

from er.rewards import REWARDS
from er.rewards.base import Reward


def _closing_brace(text: str, opening: int) -> int:
    """Index of the `}` that closes the `{` at `opening`, or -1 when the braces never balance."""
    depth = 0
    for j in range(opening, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def boxed_contents(text: str):
    """The content of every `\\boxed{...}` with balanced braces, in order of its opening."""
    start = text.find("\\boxed{")
    while start != -1:
        i = start + len("\\boxed")
        end = _closing_brace(text, i)
        if end != -1:
            yield text[i + 1 : end]
        start = text.find("\\boxed{", start + 1)


def last_boxed(text: str, markers: tuple[str, ...] = ("\\boxed{",)) -> str | None:
    """The content of the last `\\boxed{...}` (or other opening `markers`), or None when there is none
    or its braces never close (an unfinished answer)."""
    start = max(text.rfind(m) for m in markers)
    if start < 0:
        return None
    i = text.index("{", start)
    end = _closing_brace(text, i)
    return text[i + 1 : end] if end != -1 else None


def has_boxed(text: str) -> bool:
    """A `\\boxed{...}` with balanced braces and non-empty content."""
    return any(c.strip() for c in boxed_contents(text))


@REWARDS.register("format")
class Format(Reward):
    """1 if the completion is `<think>thought</think>` followed by an answer (boxed, tagged or any), else 0."""

    provenance = "code"

    def __init__(self, think_start: str = "<think>", think_end: str = "</think>", answer: str = "boxed",
                 answer_tag: str = "answer", require_start: bool = False):
        if answer not in ("boxed", "tag", "none"):
            raise ValueError(f"answer must be boxed, tag or none, not {answer!r}")
        self.think_start, self.think_end = think_start, think_end
        self.answer, self.require_start = answer, require_start
        self._tag = re.compile(rf"<{re.escape(answer_tag)}>(.+?)</{re.escape(answer_tag)}>", re.S)

    def score_row(self, record: dict) -> float:
        text = record["completion"]
        if text.count(self.think_end) != 1:
            return 0.0
        thought, after = text.split(self.think_end)
        stripped = thought.lstrip()
        if stripped.startswith(self.think_start):
            stripped = stripped[len(self.think_start):]
        elif self.require_start:
            return 0.0
        if self.think_start in stripped or not stripped.strip():
            return 0.0
        if self.answer == "boxed":
            return float(has_boxed(after))
        if self.answer == "tag":
            m = self._tag.search(after)
            return float(bool(m and m.group(1).strip()))
        return float(bool(after.strip()))
