"""`target-length`: Ruler's target-length adherence (TLG Precise/Flexible Match), arXiv 2409.18943 (code).

Li et al., "Ruler: A Model-Agnostic Method to Control Generated Length for Large Language Models"
(EMNLP 2024 Findings); windows and word counting read from Geaming2002/Ruler (src/utils/config.py,
src/utils/count.py, src/exp/cal_level_scores.py; spec length-control-and-eval.md §6, [CODE]).

    W(text) = number of regex `\\w+` matches (NLTK RegexpTokenizer(r"\\w+")): WORDS, not tokens;
              punctuation splits words ("well-known" = 2, "It's" = 2, "$3.50" = 2)
    r = 1 if lo < W <= hi else 0      (windows open on the left, closed on the right)

| target | PM (lo, hi]  | FM (lo, hi]  |
| 10     | (0, 20]      | (0, 20]      |
| 30     | (20, 40]     | (20, 40]     |
| 50     | (40, 60]     | (40, 60]     |
| 80     | (70, 90]     | (60, 100]    |
| 150    | (130, 170]   | (100, 200]   |
| 300    | (280, 320]   | (200, 400]   |
| 500    | (450, 550]   | (400, 600]   |
| 700    | (630, 770]   | (600, 800]   |
| >800   | (800, inf)   | (800, inf)   |

The target comes from the record's `target_length`: one of 10, 30, 50, 80, 150, 300, 500, 700, or
">800" (the string, or any integer above 800). Any other target is a data error (Ruler defines no
window for it). Averaging this reward over rows gives Ruler's PM/FM score / 100. An empty output
(W = 0) misses even target 10.

Defaults: match=pm. Departure (option): `span=answer` counts only the text after the last `</think>`
(for reasoning models whose trace should not count); the default `span=all` counts the whole
completion as Ruler does.
"""

from __future__ import annotations

import math
import re

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward

_WORD = re.compile(r"\w+")

TARGETS = (10, 30, 50, 80, 150, 300, 500, 700, ">800")
PM_WINDOWS = {10: (0, 20), 30: (20, 40), 50: (40, 60), 80: (70, 90), 150: (130, 170), 300: (280, 320),
              500: (450, 550), 700: (630, 770), ">800": (800, math.inf)}
FM_WINDOWS = {10: (0, 20), 30: (20, 40), 50: (40, 60), 80: (60, 100), 150: (100, 200), 300: (200, 400),
              500: (400, 600), 700: (600, 800), ">800": (800, math.inf)}


# ASCII fast path: every byte that is not [A-Za-z0-9_] becomes a space, then split (same count as \\w+).
_ASCII_WORD = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_NON_WORD_TO_SPACE = bytes(c if c in _ASCII_WORD else 32 for c in range(256))


def count_words(text: str) -> int:
    """Ruler's word count: the number of `\\w+` runs (Unicode-aware, as Python's and NLTK's regex)."""
    if text.isascii():
        return len(text.encode("ascii").translate(_NON_WORD_TO_SPACE).split())
    return len(_WORD.findall(text))


def text_span(text: str, span: str) -> str:
    """The part of a completion a word-count reward measures: `all`, or `answer` (after the last `</think>`)."""
    return text if span == "all" else text.rsplit("</think>", 1)[-1]


def ruler_target(value) -> int | str:
    """A record's `target_length` as a key of the window tables."""
    if isinstance(value, str):
        v = value.strip().replace(" ", "")
        if v in (">800", "morethan800"):
            return ">800"
        if v.isdigit():
            value = int(v)
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 800:
            return ">800"
        if value in PM_WINDOWS:
            return value
    raise ErError(f"field 'target_length' should be a Ruler target ({', '.join(map(str, TARGETS))}), got {value!r}")


def hit(words: int, window: tuple[float, float]) -> bool:
    lo, hi = window
    return lo < words <= hi


@REWARDS.register("target-length")
class TargetLength(Reward):
    """Ruler target-length adherence (code): 1 if the word count (\\w+) is in the target's PM/FM window (lo, hi], else 0."""

    fields = {"completion": "string", "target_length": ("integer", "string")}
    provenance = "code"

    def __init__(self, match: str = "pm", span: str = "all"):
        if match not in ("pm", "fm"):
            raise ValueError(f"match must be pm or fm, not {match!r}")
        if span not in ("all", "answer"):
            raise ValueError(f"span must be all or answer, not {span!r}")
        self.windows = PM_WINDOWS if match == "pm" else FM_WINDOWS
        self.span = span

    def score_row(self, record: dict) -> float:
        target = ruler_target(record["target_length"])
        return 1.0 if hit(count_words(text_span(record["completion"], self.span)), self.windows[target]) else 0.0
