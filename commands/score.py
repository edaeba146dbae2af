"""er score: add rewards to completions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug, Format, Inputs, MaxLineBytes, Output, Quiet, Rejects, print_table, stream
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    reward: Annotated[Optional[list[str]], typer.Option("--reward", "-r", help="NAME[:key=val,...] (repeatable; `weight=w` scales it in the combination; `module:attr` loads your own).")] = None,
    combine: Annotated[str, typer.Option(help="How rewards combine: sum (weighted) or product (CaRL: progress times soft factors).")] = "sum",
    workers: Annotated[Optional[int], typer.Option(help="Processes verifying answers (default: cores; 0 = in this process, no hard timeout).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per row for answer checking; a row over it is killed and scored null.")] = 10.0,
    state: Annotated[Optional[str], typer.Option(help="State file for stateful rewards (HAPO history), JSONL keyed by prompt id; one er score uses it at a time (a second is refused, exit 2).")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Benchmark preset (gsm8k, math500, aime24, amc23, gpqa): without --reward, score with its verifier (math).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the rewards and exit.")] = False,
    output: Output = None,
    format: Format = "jsonl",
    rejects: Rejects = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Score completions: adds `rewards` {name: value}, the combined `reward`, and `correct`.

    Groups (contiguous `group_id`) are kept whole; group-level rewards refuse partial groups.
    A row that cannot be scored gets null (kept, counted), never a silent 0.

    `correct`: a verifier reward in this run (math, or one that judges answers itself, e.g. tail)
    always recomputes it, replacing whatever the row carried. Otherwise a `correct` already on the
    row is used and must be true, false or null (anything else, e.g. the string "false", is a data
    error at its line); a row without one is verified against `answer` when a reward needs it.
    `er sample` never copies a prompt's `correct`, `reward(s)` or `advantage` into its samples.
    """
    from er.rewards import REWARDS

    if list_:
        from er.params import describe_params
        from er.rewards.base import summary_line

        print_table([(name, cls.level, cls.provenance, f"{summary_line(cls)}  [{describe_params(cls)}]")
                     for name, cls in REWARDS.items()])
        return
    from er.flagcheck import check_numbers

    check_numbers(("--workers", workers, "non-negative"))
    from er.groups import iter_groups
    from er.pool import default_workers
    from er.scoring import Scorer

    if preset is not None:
        from er.data.presets import get_preset

        verifier = get_preset(preset).verifier
        reward = reward or [verifier]

    scorer = Scorer(list(reward or []), combine=combine,
                    workers=default_workers() if workers is None else workers, timeout=timeout)
    if state is not None:
        scorer.use_state(state)
    with stream("score", inputs, output, format, rejects, max_line_bytes, quiet, kind="scored", progress=not quiet) as s:
        for group in scorer.run(iter_groups(s.records(), s), s):
            s.write_many([row[2] for row in group])
            s.end_group()
