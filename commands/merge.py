"""er merge: DLER update-selective merging: base + scale * (top-k% largest |tuned - base| deltas)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug


def run(
    base: Annotated[Optional[str], typer.Option("--base", help="The base model (save_pretrained dir or .safetensors).")] = None,
    tuned: Annotated[Optional[str], typer.Option("--tuned", help="The RL-tuned model (its config and tokenizer are copied).")] = None,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="Instead of --base/--tuned: a LoRA adapter directory (er update --lora's step-N); writes base + adapter as a plain model (merged in float32, saved in the base's dtype).")] = None,
    out: Annotated[str, typer.Option("--out", help="New directory for the merged model (written atomically).")] = ...,
    top_frac: Annotated[float, typer.Option("--top-frac", help="Keep this fraction of the largest |delta| (DLER 0.25).")] = 0.25,
    scale: Annotated[float, typer.Option("--scale", help="Scale of the kept deltas (DLER 0.7).")] = 0.7,
    scope: Annotated[str, typer.Option("--scope", help="Threshold per tensor or global over all weights (the paper does not say: reconstructed).")] = "tensor",
    debug: Debug = False,
) -> None:
    """DLER update-selective merging: base + scale * (top-k% largest |tuned - base| deltas).

    With --adapter DIR: fold a LoRA adapter into its base instead (W + alpha/r * B A), a plain model.

    Streams tensor by tensor (safetensors safe_open); prints a JSON summary on stdout.
    """
    import orjson

    from er.errors import UsageError
    from er.train.merge import merge
    from er.flagcheck import check_numbers

    check_numbers(("--scale", scale, "finite"))

    if adapter is not None:
        if base is not None or tuned is not None:
            raise UsageError("--adapter merges a LoRA adapter into the base it names: no --base/--tuned with it")
        from er.train.lora import merge_adapter

        typer.echo(orjson.dumps(merge_adapter(adapter, out)).decode())
        return
    if base is None or tuned is None:
        raise UsageError("--base and --tuned are required (or --adapter DIR)")
    summary = merge(base, tuned, out, top_frac=top_frac, scale=scale, scope=scope)
    typer.echo(orjson.dumps(summary).decode())
