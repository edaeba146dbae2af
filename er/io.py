"""The only code that touches stdin, stdout and record files.

Input: positional files or `-` (stdin). The format is detected from the first bytes, whatever the
name: Arrow IPC stream (continuation marker 0xFFFFFFFF) or file (`ARROW1`), Parquet (`PAR1`, or a
`.parquet` name), else JSONL; gzip and zstd are decompressed transparently (by magic bytes, so
`.gz`/`.zst` from stdin work too). Parquet and the Arrow IPC file format need their footer, so from a
pipe, a FIFO or a compressed file they are spooled to a temporary file in $TMPDIR (copied in blocks,
deleted after); a regular file is read in place (an Arrow file memory-mapped), batch by batch. A
directory is read when it is a `datasets` `save_to_disk` directory (the Arrow shards listed in its
`state.json`, in order, rows numbered across shards); a `DatasetDict` directory or any
other is a usage error that says what to pass. A JSON array, a pretty-printed JSON object or a CSV/TSV
file stops at its first line with the command that converts it to JSONL (`er.input_formats`), even
with `--rejects`: a whole file in another format is not a bad row among good ones. A UTF-8 byte-order
mark before JSONL is skipped.

Output: stdout or `-o FILE`, `--format jsonl|arrow|parquet` (`-o x.arrow` is the Arrow IPC file
format, stdout and `x.arrows` the stream format, `x.parquet` Parquet row groups: er.output_formats). A regular file or a new name is written to a
temporary name and renamed on success (a failure never leaves a half-written file under the final
name), with the mode the umask gives a new file (an existing file keeps its mode); a symlink is
followed (its target is replaced, the link stays); anything else (a FIFO, `/dev/null`, a terminal)
is written into directly, never replaced. `--rejects FILE` is written the same way and may not name
an input or the output (compared by device and inode, not by spelling). Output is flushed at
group/batch boundaries when the input is a pipe, so the next stage of a pipe starts early. Arrow
output is an IPC stream whose schema is fixed by its first record batch (`er.arrow_rows`); batches
hold about 8 MB each, so memory is bounded by bytes, not rows.

Bad rows: `RecordStream.reject` raises `ErError` pinned to `source:line`, or with `--rejects FILE`
writes `{source, line, error, record}` there and goes on. The summary `N in, M out, K rejected`
(plus `D dropped (reason: n, ...)`) goes to stderr; `in == out + rejected + dropped` always holds.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import tempfile
from collections import Counter
from typing import IO, Any, Generator, Iterable, Iterator

import orjson

from er.errors import ErError, OutputError, PipeClosed, UsageError
from er.input_formats import dataset_shards, json_array, not_jsonl, spooled

DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
_ARROW_STREAM, _ARROW_FILE, _PARQUET = b"\xff\xff\xff\xff", b"ARROW1", b"PAR1"
_UTF8_BOM = b"\xef\xbb\xbf"
_BUFFER = 1 << 20
# Arrow record batches: the first holds ARROW_FIRST_ROWS rows (written early); later ones as many
# rows as fit in about ARROW_BATCH_BYTES at the sizes seen so far (token-heavy rows: a few hundred),
# at most ARROW_MAX_ROWS (gathering a column from more dicts than that runs out of cache: measured
# 1.5x slower at 65536 rows than at 4096).
ARROW_FIRST_ROWS = 256
ARROW_BATCH_BYTES = 8 << 20
ARROW_MAX_ROWS = 4096

Row = tuple[str, int, dict]  # (source, line, record); line is 1-based (row index for Arrow/Parquet)

# Integers beyond 64 bits: orjson reads them as floats (10^30 -> 1e+30) and cannot write them. A run
# of 20 digits is where such an integer can start (2^64 has 20 digits): a block of input without one
# costs one regex scan; a line with one is parsed again by the standard library, which keeps every
# integer exact (floats parse to the same correctly rounded values); output falls back the same way.
_LONG_DIGITS = re.compile(rb"[0-9]{20}")


def _exact_loads(line: bytes) -> Any:
    import json

    return json.loads(line)


def _plain(value: Any) -> Any:
    """`value` as the standard json module can write it, the way orjson writes it (NaN -> null, numpy -> lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return _plain(value.tolist())
    return value


def encode_line(value: Any, default: Any = None) -> bytes:
    """One JSON line, as orjson writes it; integers beyond 64 bits exactly (see _LONG_DIGITS)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY, default=default)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        import json

        return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                          default=default).encode() + b"\n"


def log(message: str) -> None:
    """A line for the person at the terminal (stderr; stdout carries records only)."""
    print(message, file=sys.stderr, flush=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _open_binary(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb", buffering=_BUFFER)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None


def _peekable(raw: IO[bytes]) -> io.BufferedReader:
    return raw if hasattr(raw, "peek") else io.BufferedReader(raw, _BUFFER)  # type: ignore[arg-type]


def _decompressed(f: io.BufferedReader) -> io.BufferedReader:
    head = f.peek(4)[:4]
    if head[:2] == _GZIP:
        import gzip

        return io.BufferedReader(gzip.GzipFile(fileobj=f), _BUFFER)  # type: ignore[arg-type]
    if head == _ZSTD:
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(f), _BUFFER)  # type: ignore[arg-type]
    return f


def _seekable_source(path: str, raw: io.BufferedReader, f: io.BufferedReader, source: str) -> str | IO[bytes]:
    """What pyarrow can read a Parquet or Arrow IPC file from (both keep their index in a footer, so
    they need random access): a regular file directly (by name, or stdin redirected from one, read
    from its start), anything else (a pipe, a FIFO, decompressed bytes) spooled."""
    if f is raw:
        try:
            regular = stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
        except (AttributeError, OSError, ValueError):  # stdin replaced by an embedding program
            regular = False
        if regular and path != "-":
            raw.close()
            return path
        if regular and raw.tell() == 0:
            return raw
    return spooled(f, source)


def _not_jsonl(line: bytes, path: str, source: str, lineno: int, parsed: object = None,
               error: orjson.JSONDecodeError | None = None) -> None:
    """Stop when the first row shows a whole file in another format (JSON array, pretty JSON, CSV),
    saying how to convert it; `--rejects` does not apply: that is no bad row among good ones."""
    why = not_jsonl(line, path, parsed, error)
    if why is not None:
        raise ErError(why, source, lineno)


def _bad_text(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace").rstrip("\n")
    return text if len(text) <= 2000 else text[:2000] + f"... ({len(line)} bytes)"


def current_umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputFile:
    """A named output opened for writing: `commit()` on success, `discard()` on failure.

    Regular files and new names: a temporary file in the same directory, renamed over the name on
    commit (a symlink's target is replaced, the link stays). Anything else that exists (FIFO,
    character device, socket) is opened and written directly: renaming over it would destroy it.
    """

    def __init__(self, path: str, flag: str = "-o"):
        self.path = path
        self.tmp: str | None = None
        self.final = os.path.realpath(path)
        try:
            st: os.stat_result | None = os.stat(self.final)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise UsageError(f"{flag} {path}: cannot write here ({exc.strerror or exc})") from None
        try:
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise UsageError(f"{flag} {path}: is a directory")
            if st is not None and not stat.S_ISREG(st.st_mode):
                self.file: IO[bytes] = open(self.final, "wb", buffering=_BUFFER)
                return
            fd, self.tmp = tempfile.mkstemp(prefix=".er-", suffix=".tmp", dir=os.path.dirname(self.final))
            os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~current_umask())
        except OSError as exc:
            raise UsageError(f"{flag} {path}: cannot write here ({exc.strerror or exc})") from None
        self.file = os.fdopen(fd, "wb", buffering=_BUFFER)

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", self.path) from None

    def commit(self, sync: bool = False) -> None:
        """Close and rename into place; `sync`: fsync first, so a crash after the rename finds the data."""
        try:
            if sync:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write: {exc.strerror or exc}", self.path) from None
        if self.tmp is not None:
            os.replace(self.tmp, self.final)
            self.tmp = None

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # the failure being reported already says why
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


def _check_rejects_target(rejects: str, inputs: list[str], output: str | None) -> None:
    """`--rejects` must not name an input or the output: truncating it would destroy that data."""
    if output not in (None, "-") and os.path.realpath(output) == os.path.realpath(rejects):
        raise UsageError(f"--rejects {rejects} is the output file; give it another name")
    named: list[tuple[str, str | int]] = [(p, p) for p in inputs if p != "-"]
    if output not in (None, "-"):
        named.append((f"the output {output}", output))
    for what, std, used in (("stdin", sys.stdin, "-" in inputs), ("stdout", sys.stdout, output in (None, "-"))):
        try:
            if used:
                named.append((what, std.fileno()))
        except (AttributeError, OSError, ValueError):  # replaced by an embedding program
            pass
    for what, target in named:
        if _same_file(rejects, target):
            raise UsageError(f"--rejects {rejects} is the same file as {what}; writing it would destroy that data")


def _same_file(a: str, b: str | int) -> bool:
    """Whether path `a` and path (or open descriptor) `b` are one file (device and inode)."""
    try:
        sa = os.stat(a)
        sb = os.fstat(b) if isinstance(b, int) else os.stat(b)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(sa.st_mode) and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


class RecordStream:
    """One command's records: reading, rejecting, dropping, writing and the closing summary."""

    def __init__(
        self,
        command: str,
        inputs: Iterable[str] | None = None,
        output: str | None = None,
        fmt: str = "jsonl",
        rejects: str | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        quiet: bool = False,
        arrow_schema: Any = None,
        arrow_nested: dict | None = None,
    ):
        from er.output_formats import resolve

        fmt = resolve(fmt, output)  # -o x.parquet / x.arrow name their format
        self.command = command
        self.inputs = list(inputs or []) or ["-"]
        if self.inputs.count("-") > 1:
            raise UsageError("stdin ('-') can be read only once")
        self.max_line_bytes = max_line_bytes
        self.quiet = quiet
        self.n_in = self.n_out = self.n_rejected = 0
        self.dropped: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()  # counted events that keep the row (null rewards, ...)
        if max_line_bytes < 1:
            raise UsageError(f"--max-line-bytes must be a positive number of bytes, not {max_line_bytes}")
        if rejects is not None:
            _check_rejects_target(rejects, self.inputs, output)
        self._rejects_path = rejects
        self._rejects: OutputFile | None = None
        self.writer = RecordWriter(output, fmt, arrow_schema=arrow_schema, arrow_nested=arrow_nested)
        # a pipe or FIFO may feed a live pipeline; files and dataset directories are read at disk speed
        self.eager_flush = any(p == "-" or not (os.path.isfile(p) or os.path.isdir(p)) for p in self.inputs)

    # ---- reading ---------------------------------------------------------------------------
    def records(self) -> Iterator[Row]:
        """Every record of every input, in order. Malformed rows are rejected (see `reject`)."""
        for path in self.inputs:
            source = "<stdin>" if path == "-" else path
            if path != "-" and os.path.isdir(path):
                yield from self._read_dataset_dir(path)
                continue
            raw = _peekable(_open_binary(path))
            f = _decompressed(raw)
            head = f.peek(8)[:8]
            if head[:6] == _ARROW_FILE:
                yield from self._read_arrow(_seekable_source(path, raw, f, source), source, True, what="Arrow file")
            elif head[:4] == _ARROW_STREAM:
                yield from self._read_arrow(f, source, file_format=False)
            elif head[:4] == _PARQUET or path.endswith(".parquet"):
                yield from self._read_parquet(_seekable_source(path, raw, f, source), source)
            else:
                yield from self._read_jsonl(f, source, path)

    def _read_jsonl(self, f: io.BufferedReader, source: str, path: str) -> Iterator[Row]:
        # Blocks are split into lines in C; a line longer than the limit is skipped block by block
        # and rejected with its size, so memory stays bounded by the limit, whatever the input.
        # The first non-blank line (row `first`) is where a file in another format shows: see _not_jsonl.
        limit = self.max_line_bytes
        loads, JSONDecodeError, search = orjson.loads, orjson.JSONDecodeError, _LONG_DIGITS.search
        long_digits = pending_long = False
        first = self.n_in + 1
        if f.peek(3)[:3] == _UTF8_BOM:  # editors on Windows start UTF-8 text with one; JSON has no place for it
            f.read(3)
        array_start = first if f.peek(64).lstrip()[:1] == b"[" else 0  # a one-line array may be oversized
        lineno = 0
        pending = b""
        skipped = -1  # bytes of an oversized line being skipped, -1 when not skipping
        read = getattr(f, "read1", f.read)  # returns what a pipe has now: a slow producer is not stalled until 1 MiB
        while True:
            block = read(_BUFFER)
            if not block:
                if skipped >= 0:
                    lineno += 1
                    self._oversized(source, lineno, skipped + len(pending), limit, array_start, path)
                    return
                lines = [pending] if pending else []
                long_digits = pending_long
            else:
                if skipped >= 0:
                    cut = block.find(b"\n")
                    if cut < 0:
                        skipped += len(block)
                        continue
                    lineno += 1
                    self._oversized(source, lineno, skipped + cut, limit, array_start, path)
                    skipped = -1
                    block = block[cut + 1:]
                # a 20-digit run in this block, across its start, or in the line still pending from before
                hit = search(block) is not None or (bool(pending) and search(pending[-19:] + block[:19]) is not None)
                long_digits = hit or pending_long
                lines = block.split(b"\n")
                lines[0] = pending + lines[0]
                pending = lines.pop()
                pending_long = long_digits if not lines else hit and search(pending) is not None
                if len(pending) > limit:
                    skipped, pending, pending_long = len(pending), b"", False
            for line in lines:
                lineno += 1
                if len(line) > limit:
                    self._oversized(source, lineno, len(line), limit, array_start, path)
                    continue
                if not line or line.isspace():
                    continue
                self.n_in += 1
                try:
                    record = loads(line)
                except JSONDecodeError as exc:
                    if self.n_in == first:
                        _not_jsonl(line, path, source, lineno, error=exc)
                    self.reject(source, lineno, f"malformed JSON: {exc}", _bad_text(line))
                    continue
                if long_digits and search(line) is not None:
                    record = _exact_loads(line)
                if type(record) is not dict:
                    if self.n_in == first:
                        _not_jsonl(line, path, source, lineno, parsed=record)
                    self.reject(source, lineno, f"expected a JSON object, got {type(record).__name__}", record)
                    continue
                yield source, lineno, record
            if not block:
                return

    def _oversized(self, source: str, lineno: int, size: int, limit: int, array_start: int, path: str) -> None:
        self.n_in += 1
        if self.n_in == array_start:  # a whole JSON array on one line, too long to read as a row
            raise ErError(f"{json_array(path)} (its one line is {size} bytes)", source, lineno)
        self.reject(source, lineno, f"line of {size} bytes is over --max-line-bytes {limit}", None)

    def _read_arrow(self, f: str | IO[bytes], source: str, file_format: bool, row: int = 0,
                    what: str = "Arrow stream") -> Generator[Row, None, int]:
        """Rows after `row` (rows already read from `source`); returns the last row number.

        `f`: the stream, or for the file format (`ARROW1`) a path or a seekable file with a descriptor
        (closed here), memory-mapped: record batches are read one at a time, never the whole file."""
        import pyarrow as pa
        import pyarrow.ipc

        try:
            if file_format:
                # A file object (spooled, or stdin redirected from a file) is mapped through its descriptor:
                # read through a Python file object, pyarrow aborted the process at exit now and then
                # ("terminate called without an active exception", 2 runs in 40).
                reader = pa.ipc.open_file(pa.memory_map(f if isinstance(f, str) else f"/dev/fd/{f.fileno()}"))
                batches: Iterable = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                batches = pa.ipc.open_stream(f)
            for batch in batches:
                for record in batch.to_pylist():
                    row += 1
                    self.n_in += 1
                    yield source, row, record
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            self.n_in += 1
            self.reject(source, row + 1, f"{what} cut short or invalid after row {row}: {exc}", None)
        finally:
            if file_format and not isinstance(f, str):
                f.close()  # a spooled copy is deleted on close
        return row

    def _read_dataset_dir(self, path: str) -> Iterator[Row]:
        """A `datasets` save_to_disk directory: its Arrow shards in order, rows numbered across them
        (row N is the dataset's index N-1)."""
        row = 0
        for shard in dataset_shards(path):
            what = f"Arrow shard {os.path.basename(shard)}"
            with open(shard, "rb", buffering=_BUFFER) as f:
                if f.peek(6)[:6] != _ARROW_FILE:
                    row = yield from self._read_arrow(f, path, False, row, what)
                    continue
            row = yield from self._read_arrow(shard, path, True, row, what)

    def _read_parquet(self, parquet: str | IO[bytes], source: str) -> Iterator[Row]:
        """`parquet`: a path, or a seekable file (closed here: a spooled copy is deleted on close)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        row = 0
        try:
            for batch in pq.ParquetFile(parquet).iter_batches(batch_size=4096):
                for record in batch.to_pylist():
                    row += 1
                    self.n_in += 1
                    yield source, row, record
        except (pa.ArrowInvalid, OSError) as exc:
            self.n_in += 1
            self.reject(source, row + 1, f"Parquet file invalid after row {row}: {exc}", None)
        finally:
            if not isinstance(parquet, str):
                parquet.close()

    # ---- bookkeeping -----------------------------------------------------------------------
    def reject(self, source: str, line: int | None, error: str, record: Any) -> None:
        """Keep a bad row aside with `--rejects`, else stop the command with a located error."""
        if self._rejects_path is None:
            raise ErError(error, source, line)
        if self._rejects is None:
            self._rejects = OutputFile(self._rejects_path, "--rejects")
        self.n_rejected += 1
        entry = {"source": source, "line": line, "error": error, "record": record}
        self._rejects.write(encode_line(entry, default=str))

    def reject_error(self, row: Row, exc: ErError) -> None:
        source, line, record = row
        self.reject(exc.source or source, exc.line if exc.source else line, exc.message, record)

    def drop(self, reason: str, n: int = 1) -> None:
        """Rows left out on purpose (e.g. dynamic sampling); counted per reason in the summary."""
        self.dropped[reason] += n

    def note(self, what: str, n: int = 1) -> None:
        self.notes[what] += n

    # ---- writing ---------------------------------------------------------------------------
    def write(self, record: dict) -> None:
        self.n_out += 1
        self.writer.write(record)

    def write_many(self, records: list[dict]) -> None:
        self.n_out += len(records)
        self.writer.write_many(records)

    def end_group(self) -> None:
        """A group/batch boundary: flush now if a downstream stage may be waiting on a pipe."""
        self.writer.boundary(force=self.eager_flush)

    def summary(self, out: str | None = None) -> str:
        """`N in, M out, K rejected` (`out` replaces `M out`), then drops and notes."""
        parts = [f"{self.n_in} in, {out or f'{self.n_out} out'}, {self.n_rejected} rejected"]
        if self.dropped:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items()))
            parts.append(f"{sum(self.dropped.values())} dropped ({detail})")
        if self.notes:
            parts.append(", ".join(f"{v} {k}" for k, v in sorted(self.notes.items())))
        return f"er {self.command}: " + "; ".join(parts)

    def close(self, ok: bool = True) -> None:
        try:
            self.writer.close(ok)
        finally:
            if self._rejects is not None:
                # the rows kept aside so far are worth keeping even when the command stops
                rejects, self._rejects = self._rejects, None
                rejects.commit()
        if ok and not self.quiet:
            log(self.summary())

    def __enter__(self) -> "RecordStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def _undeclared_key(value: Any, type_: Any, path: str) -> str | None:
    """The dotted path of the first key of `value` (nested dicts) that struct type `type_` lacks."""
    if not isinstance(value, dict):
        return None
    children = {type_.field(i).name: type_.field(i).type for i in range(type_.num_fields)}
    for key, child in value.items():
        if key not in children:
            return f"{path}.{key}"
        if isinstance(child, dict) and hasattr(children[key], "num_fields") and children[key].id == type_.id:
            found = _undeclared_key(child, children[key], f"{path}.{key}")
            if found is not None:
                return found
    return None


_ARROW_BIG_INT = ("arrow output: a field holds an integer beyond 64 bits, which no Arrow integer type holds "
                  "(and a float would change it); use --format jsonl, which keeps it exact")


class RecordWriter:
    """JSONL or Arrow IPC stream to stdout or to a file renamed into place on success."""

    def __init__(self, output: str | None, fmt: str = "jsonl", arrow_schema: Any = None,
                 arrow_nested: dict | None = None):
        from er.output_formats import container, resolve

        self.fmt = resolve(fmt, output)
        self._container = container(self.fmt, output)  # Arrow stream or file, or Parquet (er.output_formats)
        self.output = None if output in (None, "-") else output
        self._target: OutputFile | None = None
        if self.output is None:
            self._out: IO[bytes] = sys.stdout.buffer
        else:
            self._target = OutputFile(self.output)
            self._out = self._target.file
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._rows: list[dict] = []
        self._arrow_schema = arrow_schema
        self._arrow_nested = arrow_nested or {}  # declared types of nested fields ("policy.step")
        self._arrow_writer = None
        self._arrow_rows = 0
        self.batch_rows = ARROW_FIRST_ROWS  # then sized by bytes (see _write_arrow_batch)

    def _encode(self, record: dict) -> bytes:
        try:
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            return encode_line(record)  # an integer beyond 64 bits; anything else raises again

    def write(self, record: dict) -> None:
        if self.fmt == "jsonl":
            data = self._encode(record)
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered >= _BUFFER:
                self.flush()
        else:
            self._rows.append(record)
            if len(self._rows) >= self.batch_rows:
                self.flush()

    def write_many(self, records: list[dict]) -> None:
        if self.fmt == "jsonl":
            encode = self._encode
            data = b"".join([encode(r) for r in records])
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered >= _BUFFER:
                self.flush()
        else:
            for r in records:
                self.write(r)

    def boundary(self, force: bool) -> None:
        if force:
            self.flush()

    def flush(self) -> None:
        try:
            self._flush()
        except BrokenPipeError:
            raise PipeClosed() from None
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", self.output or "<stdout>") from None

    def _flush(self) -> None:
        if self.fmt == "jsonl":
            if self._buffer:
                self._out.write(b"".join(self._buffer))
                self._buffer.clear()
                self._buffered = 0
        elif self._rows:
            self._write_arrow_batch(self._rows)
            self._rows = []
        self._out.flush()

    def _write_arrow_batch(self, rows: list[dict]) -> None:
        import pyarrow as pa

        from er import arrow_rows

        if self._arrow_writer is None:
            try:
                inferred = arrow_rows.infer_schema(rows)
            except OverflowError:
                raise ErError(_ARROW_BIG_INT) from None
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ErError(f"arrow output: {exc}; give the field one type or use --format jsonl") from None
            if self._arrow_schema is not None:  # known fields take their declared types
                inferred = pa.schema([self._arrow_schema.field(f.name) if f.name in self._arrow_schema.names else f
                                      for f in inferred])
                inferred = arrow_rows.with_declared_children(inferred, self._arrow_nested)
            self._schema = inferred
            from er.output_formats import open_writer

            self._arrow_writer = open_writer(self._container, self._out, inferred)
        names = set(self._schema.names)
        structs = [(f.name, f.type) for f in self._schema if pa.types.is_struct(f.type)]
        for r in rows:
            extra = r.keys() - names
            if extra:
                raise ErError(f"arrow output: field(s) {sorted(extra)} not in the stream's schema "
                              "(fixed by its first batch); use --format jsonl for ragged records")
            for name, type_ in structs:  # pyarrow would drop a key its struct lacks without a word
                where = _undeclared_key(r.get(name), type_, name)
                if where is not None:
                    raise ErError(f"arrow output: key {where} not in the stream's schema (fixed by its first "
                                  "batch; Arrow would drop it); use --format jsonl for ragged records")
        try:
            # pandas imported already (by anything) makes pa.array free to call
            scalars_from_buffers = self._arrow_rows < arrow_rows.SCALAR_BUFFER_ROWS and "pandas" not in sys.modules
            batch = arrow_rows.record_batch(rows, self._schema, scalars_from_buffers)
        except OverflowError:
            raise ErError(_ARROW_BIG_INT) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ErError(f"arrow output: a record does not fit the stream's schema (typed by its first "
                          f"{self._arrow_rows or len(rows)} rows; an Arrow stream cannot change it): {exc}; "
                          "give the field one type or use --format jsonl") from None
        try:
            self._arrow_writer.write_batch(batch)
        except pa.ArrowInvalid as exc:  # e.g. "Max recursion depth reached": nesting too deep for Arrow
            raise ErError(f"arrow output: {exc} (a field nested too deeply for Arrow?); use --format jsonl") from None
        self._arrow_rows += batch.num_rows
        bytes_per_row = max(1, batch.nbytes // max(1, batch.num_rows))
        self.batch_rows = max(1, min(ARROW_MAX_ROWS, ARROW_BATCH_BYTES // bytes_per_row))

    def close(self, ok: bool = True) -> None:
        committed = False
        try:
            if ok:
                self.flush()
                if self._arrow_writer is None and self._container != "stream" and self._arrow_schema is not None:
                    from er.output_formats import open_writer

                    # no rows: an Arrow file or Parquet file needs its footer, with the kind's declared schema
                    self._arrow_writer = open_writer(self._container, self._out, self._arrow_schema)
                if self._arrow_writer is not None:
                    try:
                        self._arrow_writer.close()
                    except BrokenPipeError:
                        raise PipeClosed() from None
                    except OSError as exc:
                        raise OutputError(f"cannot write: {exc.strerror or exc}", self.output or "<stdout>") from None
                self.flush()  # no rows in arrow format: an empty file is the honest output
                if self._target is not None:
                    self._target.commit()
                    committed = True
        finally:
            if self._target is not None and not committed:
                self._target.discard()


def read_records(paths: Iterable[str], command: str = "er") -> Iterator[dict]:
    """Plain record iterator for library users and tests (errors raise; nothing is rejected)."""
    stream = RecordStream(command, paths, output=None, quiet=True)
    for _, _, record in stream.records():
        yield record


def write_records(records: Iterable[dict], output: str | None = None, fmt: str = "jsonl") -> int:
    """Write records to stdout or a file (atomically); returns the count."""
    writer = RecordWriter(output, fmt)
    n = 0
    try:
        for r in records:
            writer.write(r)
            n += 1
    except BaseException:
        writer.close(ok=False)
        raise
    writer.close(ok=True)
    return n


def write_text(text: str, output: str | None = None) -> None:
    """Plain text (a Markdown report) to stdout or to a file renamed into place on success."""
    writer = RecordWriter(output, "jsonl")
    writer._buffer.append(text.encode("utf-8"))
    writer.close(ok=True)
