"""Numeric flags out of their range are usage errors (exit 2) before any row is read.

`check_numbers((flag, value, rule), ...)`: `value` None (the flag not given) passes; NaN never
passes. Rules: "positive" (> 0), "at-least-1" (an int >= 1), "non-negative" (>= 0), "finite",
"fraction" (0 < x <= 1), "weight" (0 <= x < 1, an EMA weight), "port" (a TCP port, 1..65535).
"""

from __future__ import annotations

import math

from er.errors import UsageError

_RULES = {
    "positive": (lambda x: x > 0, "a number > 0"),
    "at-least-1": (lambda x: x >= 1, "at least 1"),
    "non-negative": (lambda x: x >= 0, "a number >= 0"),
    "finite": (lambda x: True, "a finite number"),
    "fraction": (lambda x: 0 < x <= 1, "in (0, 1]"),
    "weight": (lambda x: 0 <= x < 1, "in [0, 1)"),
    "port": (lambda x: x == int(x) and 1 <= x <= 65535, "a TCP port (1..65535)"),
}


def check_numbers(*checks: tuple[str, float | int | None, str]) -> None:
    for flag, value, rule in checks:
        if value is None:
            continue
        ok, wanted = _RULES[rule]
        if not math.isfinite(value) or not ok(value):
            raise UsageError(f"{flag} must be {wanted}, not {value}")
