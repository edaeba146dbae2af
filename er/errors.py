"""The three kinds of failure `er` reports, and how each maps to an exit code.

`er.cli.main` is the only place that turns them into a message and an exit status:
`er <cmd>: <source>:<line>: <message>`, exit 1 for bad data, 2 for bad usage.
"""

from __future__ import annotations

import difflib


class ErError(Exception):
    """Bad data: a record, file or value that cannot be processed. Exit status 1."""

    exit_code = 1

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line

    def located(self, source: str, line: int | None) -> "ErError":
        """The same error, pinned to a place in the input (kept if already pinned)."""
        if self.source is None:
            self.source, self.line = source, line
        return self

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        return where + self.message


class UsageError(ErError):
    """Bad usage: a flag, parameter or name the user gave. Exit status 2."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A registry name that does not exist; the message suggests the closest names and lists all."""

    def __init__(self, kind: str, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}")
        self.name = name
        self.known = known


class PipeClosed(Exception):
    """The reader of our stdout went away (`| head`): stop quietly with status 0.

    Deliberately not an OSError, so that no framework layer turns it into a failure."""


class OutputError(ErError):
    """The output cannot be written (disk full, I/O error): exit 1, nothing more is written."""
