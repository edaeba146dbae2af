"""er validate: check record streams against a schema."""

from __future__ import annotations

from typing import Annotated

import typer

from er.commands._common import Debug, Inputs, MaxLineBytes
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="Record kind to check against (er schema lists them).")] = "sample",
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    debug: Debug = False,
) -> None:
    """Check every row of the inputs against a record schema; report every bad row with its line.

    Exit 0 when all rows are valid, 1 otherwise. Nothing is written to stdout.
    """
    from er.errors import ErError
    from er.io import RecordStream, log
    from er.schema import errors, load_schema

    load_schema(kind)
    bad = 0
    # Malformed lines are reported like schema violations: collect them through a rejects sink.
    stream = RecordStream("validate", inputs, output=None, max_line_bytes=max_line_bytes, quiet=True)

    def report(source, line, error, record):
        nonlocal bad
        bad += 1
        log(f"er validate: {source}:{line}: {error}")

    stream.reject = report  # type: ignore[method-assign]
    for source, line, record in stream.records():
        for message in errors(record, kind):
            report(source, line, message, record)
    log(f"er validate: {stream.n_in} rows, {bad} problems ({kind})")
    if bad:
        raise ErError(f"{bad} problem(s) in {stream.n_in} rows")
