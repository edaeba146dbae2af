"""er advantage: turn rewards into advantages."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug, Format, Inputs, MaxLineBytes, Output, Quiet, Rejects, print_table, stream
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    estimator: Annotated[str, typer.Option("--estimator", "-e", help="NAME[:key=val,...] (see --list).")] = "grpo",
    batch_groups: Annotated[int, typer.Option(help="Groups per batch for batch-scope estimators (DLER whitening); match your update batch.")] = 32,
    dynamic_sampling: Annotated[bool, typer.Option("--dynamic-sampling", help="Drop groups whose rewards are all equal (DAPO/DLER), counted per reason.")] = False,
    normalize_then_sum: Annotated[Optional[str], typer.Option("--normalize-then-sum", help="mean or sum: run the estimator on each component of `rewards` within its group, then average (LongWriter-Zero) or sum (GDPO) the advantages.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the estimators and exit.")] = False,
    output: Output = None,
    format: Format = "jsonl",
    rejects: Rejects = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Compute advantages: adds `advantage` and `estimator` to every scored row.

    Groups must be contiguous (as `er sample` writes them); null rewards get advantage 0.
    """
    if list_:
        from er.advantages import ESTIMATORS
        from er.params import describe_params
        from er.rewards.base import summary_line

        print_table([(name, cls.scope, cls.provenance, f"{summary_line(cls)}  [{describe_params(cls)}]")
                     for name, cls in ESTIMATORS.items()])
        return
    from er.advantaging import AdvantageRunner
    from er.groups import iter_groups

    with stream("advantage", inputs, output, format, rejects, max_line_bytes, quiet, kind="advantaged", progress=not quiet) as s:
        runner = AdvantageRunner(estimator, batch_groups, dynamic_sampling, eager=s.eager_flush,
                                 normalize_then_sum=normalize_then_sum)
        for records in runner.run(iter_groups(s.records(), s), s):
            s.write_many(records)
            s.end_group()
