"""er synth-tail: generate TAIL (Turing-machine imitation) problems and chain-of-thought traces."""

from __future__ import annotations

from typing import Annotated

import typer

from er.commands._common import Debug, Format, Output, Quiet, Seed, print_table, stream


def run(
    task: Annotated[str, typer.Option("--task", help="Task name, a comma list, or all (see --list).")] = "all",
    n: Annotated[int, typer.Option("-n", "--n", help="Problems per task.")] = 100,
    split: Annotated[str, typer.Option(help="Length split: short, medium or long (train on short, test on the others).")] = "short",
    ranges: Annotated[str, typer.Option(help="Range table: small (ours, CPU-sized traces; default) or paper (Table F1).")] = "small",
    with_trace: Annotated[bool, typer.Option("--with-trace", help="Add the chain of thought as `completion` (SFT-ready), with `trace_chars`, `trace_steps`.")] = False,
    style: Annotated[str, typer.Option(help="tail (full atomic trace), concise (operations only) or verbose (padded, redundant).")] = "tail",
    think: Annotated[bool, typer.Option(help="Wrap the trace in <think>...</think> before the final \\boxed{answer}.")] = True,
    list_: Annotated[bool, typer.Option("--list", help="List the tasks (name, class, short/medium/long ranges) and exit.")] = False,
    seed: Seed = None,
    output: Output = None,
    format: Format = "jsonl",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write TAIL prompt records: `id`, `prompt`, `answer`, `task`, `class`, `length` (+ `completion` with --with-trace).

    18 tasks in 8 algorithm classes (Hua et al. 2025). Traces: linear transition, atomic states,
    explicit memory fetch; the final answer is \\boxed{ANSWER}. Same seed, same bytes.
    """
    from er.data.tail import TASKS, generate, ranges as ranges_of, task_names
    from er.errors import UsageError

    if list_:
        rows = []
        for name, t in TASKS.items():
            r = ranges_of(t, ranges)
            rows.append((name, t.cls, " ".join(f"{s}={lo}-{hi}" for s, (lo, hi) in zip(("S", "M", "L"), r)),
                         t.title + (" [reconstructed]" if t.reconstructed else "")))
        print_table(rows)
        return
    if n < 0:
        raise UsageError(f"--n must be non-negative, not {n}")
    names = task_names(task)
    from er.io import log

    with stream("synth-tail", [], output, format, None, 1, quiet, kind="prompt") as s:
        lengths: dict[str, list[int]] = {}
        from er.progress import track, wanted

        records = generate(names, n, split, 0 if seed is None else seed, style, with_trace, ranges,
                           think, on_duplicate=lambda: s.note("duplicate problems (the range is too small)"))
        for record in track(records, unit="prompt", desc="er synth-tail", on=wanted(quiet)):
            s.write(record)
            if with_trace:
                acc = lengths.setdefault(record["task"], [0, 0, 0])
                acc[0] += 1
                acc[1] += record["trace_chars"]
                acc[2] += record["trace_steps"]
        if with_trace and not quiet:
            for name, (k, chars, steps) in lengths.items():
                log(f"er synth-tail: {name} ({style}): mean {chars / k:.0f} trace chars, {steps / k:.1f} states")
