"""er merge: DLER update-selective merging: base + scale * (top-k% largest |tuned - base| deltas)."""

from __future__ import annotations

from typing import Annotated

import typer

from er.commands._common import Debug


def run(
    base: Annotated[str, typer.Option("--base", help="The base model (save_pretrained dir or .safetensors).")] = ...,
    tuned: Annotated[str, typer.Option("--tuned", help="The RL-tuned model (its config and tokenizer are copied).")] = ...,
    out: Annotated[str, typer.Option("--out", help="New directory for the merged model (written atomically).")] = ...,
    top_frac: Annotated[float, typer.Option("--top-frac", help="Keep this fraction of the largest |delta| (DLER 0.25).")] = 0.25,
    scale: Annotated[float, typer.Option("--scale", help="Scale of the kept deltas (DLER 0.7).")] = 0.7,
    scope: Annotated[str, typer.Option("--scope", help="Threshold per tensor or global over all weights (the paper does not say: reconstructed).")] = "tensor",
    debug: Debug = False,
) -> None:
    """DLER update-selective merging: base + scale * (top-k% largest |tuned - base| deltas).

    Streams tensor by tensor (safetensors safe_open); prints a JSON summary on stdout.
    """
    import orjson

    from er.train.merge import merge
    from er.flagcheck import check_numbers

    check_numbers(("--scale", scale, "finite"))

    summary = merge(base, tuned, out, top_frac=top_frac, scale=scale, scope=scope)
    typer.echo(orjson.dumps(summary).decode())
