"""Progress lines on stderr, and only when stderr is a terminal (DESIGN.md, Streams and flags).

One helper for every long command, on tqdm: `er score / advantage / eval / decompose` count the rows they
read (rows, rows/s), `er sample` the prompts done and completion tokens/s, `synth-tail` the prompts
written, `er update` the step with its loss and tokens/s. Scripts and pipes (stderr not a TTY) see only
the final summary; `--quiet` turns the line off too. tqdm throttles its own redraws (`mininterval`), so
a million-row stream pays a counter increment per row, not a terminal write.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


def _unit(unit: str) -> str:
    """tqdm writes `{n}{unit}` and `{rate}{unit}/s`: " rows" reads "6.0k rows [00:00, 94.5k rows/s]"."""
    return f" {unit}s"


def wanted(quiet: bool = False) -> bool:
    """Show a progress line? Only on a terminal, and not with --quiet."""
    return not quiet and sys.stderr.isatty()


class Progress:
    """A tqdm line on stderr when `on` (default: stderr is a TTY); every method is a no-op otherwise."""

    def __init__(self, unit: str = "row", desc: str | None = None, on: bool | None = None, total: int | None = None):
        self.bar = None
        self.tokens = 0  # completion/trained tokens so far, for tokens/s
        self.t0 = time.monotonic()
        if wanted() if on is None else on:
            from tqdm import tqdm

            self.bar = tqdm(unit=_unit(unit), unit_scale=True, desc=desc, total=total, file=sys.stderr,
                            dynamic_ncols=True)

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.monotonic() - self.t0, 1e-9)

    def update(self, n: int = 1, tokens: int = 0, **postfix: Any) -> None:
        self.tokens += tokens
        if self.bar is None:
            return
        self.bar.update(n)
        if tokens:
            postfix["tok/s"] = f"{self.tokens_per_second():.0f}"
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable, unit: str = "row", desc: str | None = None, on: bool | None = None) -> Iterator:
    """`items`, counted on a progress line when `on` (default: stderr is a TTY)."""
    if not (wanted() if on is None else on):
        yield from items
        return
    from tqdm import tqdm

    bar = tqdm(items, unit=_unit(unit), unit_scale=True, desc=desc, file=sys.stderr, dynamic_ncols=True)
    try:
        yield from bar
    finally:
        bar.close()


def count_rows(stream, unit: str = "row") -> None:
    """Make `stream.records()` (a RecordStream) count the rows it reads on a progress line."""
    read = stream.records

    def records():
        return track(read(), unit=unit, desc=f"er {stream.command}", on=True)

    stream.records = records
