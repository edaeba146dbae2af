"""`longwriter-length`: LongWriter-Zero's length reward, arXiv 2506.18841 (notes).

Wu et al., "LongWriter-Zero: Mastering Ultra-Long Text Generation via Reinforcement Learning" (2025).
Per query an LLM (QwQ-32B) predicts a suitable length range [L_lower, L_upper]; the Length RM is 1
inside it, rises linearly below it and decays linearly above it (spec length-control-and-eval.md §4,
[NOTES]: the formula is reproduced from a paper note; L_max and the unit are not verified).

    r = len / L_lower                      if len < L_lower
      = 1                                  if L_lower <= len <= L_upper
      = (L_max - len) / (L_max - L_upper)  if len > L_upper, clipped at 0 beyond L_max

len is counted in WORDS by default (`unit=words`: Ruler's `\\w+` count, see `er.rewards.ruler`);
`unit=chars` counts non-whitespace characters (for Chinese, where the paper note says characters);
`unit=tokens` uses `completion_tokens`. The range comes from the record: `target_lower` and
`target_upper` (rename with `lower_field` / `upper_field`), written by your length-range predictor.

Defaults: L_max=12000 (RECONSTRUCTED placeholder: the paper's L_max is unknown; it must exceed every
L_upper); span=all. Worked numbers (L_lower 2000, L_upper 3000, L_max 12000): lengths 1500, 2500,
4500, 9000 -> 0.75, 1.0, 0.83333, 0.33333.

Departures: the clip at 0 beyond L_max is the spec's choice, not the paper's; `span=answer` (count only
after the last `</think>`, e.g. the `<answer>` part) is an option; a record with L_upper < L_lower,
L_lower <= 0 or L_upper >= L_max is a data error. LongWriter-Zero averages this reward's group
advantage with those of its writing and format RMs: `er advantage --normalize-then-sum mean`.
"""

from __future__ import annotations

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward, tokens
from er.rewards.ruler import count_words, text_span


def length_reward(n: float, lower: float, upper: float, L_max: float) -> float:
    if n < lower:
        return n / lower
    if n <= upper:
        return 1.0
    return max(0.0, (L_max - n) / (L_max - upper))


@REWARDS.register("longwriter-length")
class LongWriterLength(Reward):
    """LongWriter-Zero length RM (notes): 1 inside [target_lower, target_upper] words, linear outside, 0 at L_max."""

    provenance = "notes"

    def __init__(self, L_max: int = 12000, unit: str = "words", span: str = "all",
                 lower_field: str = "target_lower", upper_field: str = "target_upper"):
        if L_max <= 0:
            raise ValueError(f"L_max must be > 0, got {L_max}")
        if unit not in ("words", "chars", "tokens"):
            raise ValueError(f"unit must be words, chars or tokens, not {unit!r}")
        if span not in ("all", "answer"):
            raise ValueError(f"span must be all or answer, not {span!r}")
        if not lower_field or not upper_field:
            raise ValueError("lower_field and upper_field must be field names")
        self.L_max, self.unit, self.span = L_max, unit, span
        self.lower_field, self.upper_field = lower_field, upper_field
        self.fields = {"completion": "string", lower_field: "number", upper_field: "number"}
        if unit == "tokens":
            self.fields["completion_tokens"] = "integer"

    def length(self, record: dict) -> int:
        if self.unit == "tokens":
            return tokens(record)
        text = text_span(record["completion"], self.span)
        if self.unit == "words":
            return count_words(text)
        return sum(1 for ch in text if not ch.isspace())

    def score_row(self, record: dict) -> float:
        lower, upper = record[self.lower_field], record[self.upper_field]
        if not 0 < lower <= upper < self.L_max:
            raise ErError(f"need 0 < {self.lower_field} <= {self.upper_field} < L_max={self.L_max}, "
                          f"got {lower} and {upper}")
        return length_reward(self.length(record), lower, upper, self.L_max)
