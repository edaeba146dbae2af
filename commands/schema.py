"""er schema: print the JSON Schema of a record kind."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def run(kind: Annotated[Optional[str], typer.Argument(help="prompt, sample, scored, advantaged, metrics, report; none lists them.")] = None) -> None:
    """Print the JSON Schema of a record kind (the contract between commands)."""
    from er.schema import kinds, schema_text

    if kind is None:
        for k in kinds():
            typer.echo(k)
        return
    typer.echo(schema_text(kind), nl=False)
