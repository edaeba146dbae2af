"""Flags every record command shares (DESIGN.md, Streams and flags), defined once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.io import RecordStream

Inputs = Annotated[Optional[list[str]], typer.Argument(help="Input files (JSONL, Arrow, Parquet; .gz/.zst) or datasets save_to_disk directories; '-' or none for stdin.", show_default=False)]
Output = Annotated[Optional[str], typer.Option("-o", "--output", help="Write here instead of stdout: a file through a temporary name renamed on success (after a failure or Ctrl-C, FILE is as it was); a FIFO or device is written into.")]
Format = Annotated[str, typer.Option("--format", help="Output format: jsonl, arrow (the IPC stream format on stdout and in x.arrows, the IPC file format in x.arrow/x.feather/x.ipc, which pandas, polars and pyarrow's open_file read) or parquet (row groups written as the records come); -o x.parquet, x.arrow, x.feather, x.arrows imply theirs.")]
Rejects = Annotated[Optional[str], typer.Option("--rejects", help="Keep going past bad rows and write them here as {source, line, error, record}.")]
MaxLineBytes = Annotated[int, typer.Option("--max-line-bytes", help="Reject JSONL lines longer than this.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Makes every random choice reproducible.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")]


def stream(command: str, inputs, output, fmt, rejects, max_line_bytes, quiet=False, kind: str | None = None,
           progress: bool = False) -> RecordStream:
    """The command's RecordStream; `progress`: count the rows read on stderr when it is a terminal (er.progress)."""
    arrow_schema = arrow_nested = None
    from er.output_formats import resolve

    if resolve(fmt, output) != "jsonl" and kind:
        from er.schema import arrow_nested_types, arrow_schema as schema_for

        arrow_schema, arrow_nested = schema_for(kind), arrow_nested_types(kind)
    s = RecordStream(command, inputs, output=output, fmt=fmt, rejects=rejects,
                     max_line_bytes=max_line_bytes, quiet=quiet, arrow_schema=arrow_schema, arrow_nested=arrow_nested)
    if progress:
        from er.progress import count_rows, wanted

        if wanted():
            count_rows(s)
    return s


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Aligned columns on stdout (for --list)."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
