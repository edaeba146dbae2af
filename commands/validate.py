"""er validate: check record streams against a schema and the checks the commands make."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug, Inputs, MaxLineBytes
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="Record kind to check against (er schema lists them).")] = "sample",
    for_: Annotated[Optional[list[str]], typer.Option("--for", help="Also check what a later stage needs: score:REWARD[:key=val,...] (repeatable; the rewards of one `er score` run), e.g. score:math asks every row for an `answer`.")] = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    debug: Debug = False,
) -> None:
    """Check every row of the inputs; report every bad row with its line.

    The checks are the commands' own, from the same code: the JSON Schema of --kind; for kinds with
    groups (sample, scored, advantaged) whole, contiguous groups of `group_size` rows (as every
    stage that reads groups checks them); with --for, the per-row checks of that stage (fields the
    rewards read, `answer` where correctness must be verified, a `correct` that is not
    true/false/null). Exit 0 when all rows are valid, 1 otherwise. Nothing is written to stdout.
    """
    from er.validation import validate

    validate(inputs, kind, list(for_ or []), max_line_bytes)
