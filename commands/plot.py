"""er plot: draw training curves from er update's metrics stream (and held-out er eval reports)."""

from __future__ import annotations

from typing import Annotated

import typer
from er.commands._common import Quiet


def run(
    inputs: Annotated[list[str], typer.Argument(help="er update metrics JSONL files (one run each; may still be growing), each optionally followed by that run's held-out er eval reports (records with a `step`, or of a step-N checkpoint).")],
    output: Annotated[str, typer.Option("--output", "-o", metavar="FILE", help="The figure: PNG, SVG or PDF by FILE's extension.")],
    smooth: Annotated[float, typer.Option("--smooth", metavar="W", help="EMA weight in [0, 1) as TensorBoard's slider (debiased); the raw values are drawn faint behind. 0 = raw.")] = 0.0,
    title: Annotated[str | None, typer.Option("--title", help="Figure title (default: the runs' names and step count).")] = None,
    quiet: Quiet = False,
) -> None:
    """Draw a training run: mean completion length and accuracy over steps on one panel (held-out reports
    overlaid with markers), then reward, truncation rate, KL, entropy, clip fraction, grad norm and policy
    lag. Several files are overlaid, one colour each, named by their shortest unique file names.
    Reads what the files hold now, so it can be run while training is still writing them.
    """
    from er.evaluation.curves import write_curves
    from er.io import log

    series = write_curves(output, inputs, smooth, title)
    if not quiet:
        steps = sum(len(s.train) for s in series)
        held = sum(len(s.held_out) for s in series)
        log(f"er plot: {len(series)} run(s), {steps} steps, {held} held-out points -> {output}")
