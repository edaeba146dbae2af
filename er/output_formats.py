"""Which container a columnar output is written in, and the pyarrow writer for it.

`--format arrow` writes the Arrow IPC *stream* format to stdout, a pipe and `-o x.arrows` (what a next
`er` stage or `pa.ipc.open_stream` reads as it arrives), and the IPC *file* format to `-o x.arrow`,
`x.feather` or `x.ipc`: those suffixes mean the file format to pyarrow (`pa.ipc.open_file`), polars
(`pl.read_ipc`) and pandas (`pd.read_feather`, Feather v2 being the IPC file format), which cannot open
a stream. `--format parquet` (implied by `-o x.parquet`, as `-o x.arrow`/`.feather`/`.arrows` imply
`--format arrow`) writes one Parquet row group per record batch as the records come, so memory stays
bounded by the batch size (about 8 MB, er.io). Both file formats keep their index in a footer written
at the end; `-o`'s temporary name, renamed on success, keeps a half-written file from appearing.
"""

from __future__ import annotations

from typing import IO, Any

from er.errors import UsageError

FORMATS = ("jsonl", "arrow", "parquet")
ARROW_FILE_SUFFIXES = (".arrow", ".feather", ".ipc")
ARROW_STREAM_SUFFIXES = (".arrows",)


def resolve(fmt: str, output: str | None) -> str:
    """The output format: `fmt`, or the one `-o`'s suffix names when `fmt` is the default jsonl."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be {', '.join(FORMATS[:-1])} or {FORMATS[-1]}, not {fmt!r}")
    name = (output or "").lower()
    if fmt == "jsonl" and output not in (None, "-"):
        if name.endswith(".parquet"):
            return "parquet"
        if name.endswith(ARROW_FILE_SUFFIXES + ARROW_STREAM_SUFFIXES):
            return "arrow"
    return fmt


def container(fmt: str, output: str | None) -> str:
    """'stream', 'file' (Arrow IPC file) or 'parquet' for a columnar `fmt` written to `output`."""
    if fmt == "parquet":
        return "parquet"
    name = (output or "").lower()
    return "file" if output not in (None, "-") and name.endswith(ARROW_FILE_SUFFIXES) else "stream"


def open_writer(kind: str, out: IO[bytes], schema: Any):
    """A pyarrow writer with `write_batch` and `close` for `kind` (see `container`)."""
    import pyarrow as pa
    import pyarrow.ipc  # noqa: F401  (pa.ipc)

    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(out, schema)
    if kind == "file":
        return pa.ipc.new_file(out, schema)
    return pa.ipc.new_stream(out, schema)
