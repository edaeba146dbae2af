"""The reward contract (DESIGN.md, Registries).

A reward is a class whose typed `__init__` keyword arguments ARE its parameters (defaults = the
paper's), called on one group: `reward(group: list[dict]) -> list[float | None]`. `None` means
"cannot score this row": the row is kept, the null is left out of group statistics and gets
advantage 0, and it is counted in the summary. Per-row rewards implement `score_row` and inherit
the mapping.

Class attributes the scorer reads:
- `level`: "row" or "group" (group rewards refuse partial groups),
- `needs_correct`: the scorer verifies rows that carry no `correct` before calling,
- `verifies_correct`: this reward's value is the scorer's verification (`math`): with it in the run,
  `correct` is recomputed on every row, never taken from the input,
- `judges_correct`: this reward IS a verifier (1 = correct, 0 = wrong, null = cannot judge): when
  it is in the run, it sets `correct` for the others instead of math-verify (e.g. `tail`),
- `fields`: the record fields read, with JSON types, checked cheaply per row,
- `provenance`: "code", "paper", "notes" or "reconstructed" (shown by `er score --list`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from er.errors import ErError


class Reward:
    level: ClassVar[str] = "row"
    needs_correct: ClassVar[bool] = False
    verifies_correct: ClassVar[bool] = False
    fields: ClassVar[dict[str, Any]] = {"completion": "string"}
    provenance: ClassVar[str] = "code"

    def __call__(self, group: list[dict]) -> list[float | None]:
        return [self.score_row(r) for r in group]

    def score_row(self, record: dict) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Called once at the end of a stream (stateful rewards persist here)."""


def summary_line(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def finite_or_none(value: float | None) -> float | None:
    """NaN/Infinity never leave a reward: JSON cannot carry them and they poison group statistics."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def tokens(record: dict) -> int:
    """The completion length in tokens, as written by `er sample`."""
    n = record.get("completion_tokens")
    if type(n) is not int or n < 0:
        raise ErError("missing or invalid 'completion_tokens' (a length reward counts tokens; "
                      "records from `er sample` carry it)")
    return n


def is_correct(record: dict) -> bool | None:
    """The verifier's verdict the scorer put on the record (`correct`), None if it could not judge."""
    value = record.get("correct")
    return None if value is None else bool(value)
