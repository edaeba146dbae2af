"""Inputs that are not a plain record stream: what `er.io` needs to read them, or to refuse them well.

- Parquet and the Arrow IPC file format keep their index in a footer at the end, so they need a
  seekable file. A pipe, a FIFO or a decompressed stream is spooled to a temporary file (in $TMPDIR,
  deleted when closed), copied in blocks so memory stays bounded.
- A `datasets` `save_to_disk` directory: `state.json` lists the `data-*.arrow` shards (Arrow IPC
  streams) in order. A `DatasetDict` directory (`dataset_dict.json`) holds one such directory per
  split; the user is asked to pass one.
- A JSON array, a pretty-printed JSON object or a CSV/TSV file given where JSONL is expected: the
  first non-blank line tells which, and the error says how to convert the file.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from typing import IO

import orjson

from er.errors import ErError, UsageError

_BLOCK = 1 << 20
ACCEPTED = "JSONL, Arrow IPC or Parquet files, or a datasets save_to_disk directory (with state.json)"


# ---- Parquet and Arrow files from a stream -------------------------------------------------
def spooled(f: IO[bytes], source: str) -> IO[bytes]:
    """A seekable temporary copy of the rest of `f` (gone from the disk once closed)."""
    try:
        tmp = tempfile.TemporaryFile(prefix="er-spool-")
    except OSError as exc:
        raise ErError(f"cannot create a temporary file in {tempfile.gettempdir()} to read Parquet or an Arrow "
                      f"file from a stream ({exc.strerror or exc}); set TMPDIR or give the file by name",
                      source) from None
    try:
        shutil.copyfileobj(f, tmp, _BLOCK)
        tmp.seek(0)
    except OSError as exc:
        tmp.close()
        raise ErError(f"cannot copy a stream to a temporary file in {tempfile.gettempdir()} "
                      f"({exc.strerror or exc}); set TMPDIR to a place with room or give the file by name",
                      source) from None
    return tmp


# ---- datasets save_to_disk directories ---------------------------------------------------------
def dataset_shards(path: str) -> list[str]:
    """The Arrow shards of a `save_to_disk` directory in order; a usage error for any other directory."""
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):
        splits = _json(os.path.join(path, "dataset_dict.json")).get("splits") or []
        names = " or ".join(os.path.join(path.rstrip("/"), str(s)) for s in splits) or "one split's directory"
        raise UsageError(f"{path}: is a datasets DatasetDict directory; pass one split: {names}")
    state_path = os.path.join(path, "state.json")
    if not os.path.isfile(state_path):
        raise UsageError(f"{path}: is a directory; give {ACCEPTED}")
    files = _json(state_path).get("_data_files")
    if not isinstance(files, list) or not all(isinstance(e, dict) and isinstance(e.get("filename"), str)
                                              for e in files):
        raise ErError("not a datasets state.json: no _data_files list of filenames", state_path)
    shards = [os.path.join(path, e["filename"]) for e in files]
    for shard in shards:
        if not os.path.isfile(shard):
            raise ErError(f"state.json lists {os.path.basename(shard)}, which is missing", path)
    return shards


def _json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            value = orjson.loads(f.read())  # a few hundred bytes of metadata
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError as exc:
        raise ErError(f"malformed JSON: {exc}", path) from None
    if not isinstance(value, dict):
        raise ErError(f"expected a JSON object, got {type(value).__name__}", path)
    return value


# ---- files in another format given as JSONL ----------------------------------------------------
_JSONL = "er reads JSONL (one JSON object per line)"
_CSV_TO_JSONL = ("python3 -c 'import csv,json,sys; [print(json.dumps(r)) for r in csv.DictReader(sys.stdin{})]' "
                 "< {} > {}")


def not_jsonl(line: bytes, path: str, parsed: object = None, error: orjson.JSONDecodeError | None = None) -> str | None:
    """Why a source whose first non-blank `line` failed as JSONL is a whole file in another format,
    with the command that converts it; None when it looks like JSONL with a bad first row.

    `parsed` is what the line decoded to (when it did), `error` why it did not."""
    text = line.strip()
    if isinstance(parsed, list) and (not parsed or isinstance(parsed[0], dict)):
        return json_array(path)
    if error is None:
        return None
    if text.startswith(b"["):
        return json_array(path)
    # a `{` line that is a cut-short JSON value (the error is at its end): the first line of a
    # pretty-printed object. A `{` line broken in its middle is a bad JSONL row, left to --rejects.
    if text.startswith(b"{") and error.pos >= len(line.rstrip().decode("utf-8", "replace")):  # pos counts chars
        src, dst = _names(path)
        return f"a multi-line (pretty-printed) JSON value, not JSONL; {_JSONL}: convert it with jq -c . {src} > {dst}"
    tsv = path.endswith(".tsv") or (b"\t" in text and b"," not in text)
    if path.endswith((".csv", ".tsv")) or (not text.startswith((b"{", b"[")) and (b"," in text or tsv)):
        src, dst = _names(path)
        fix = _CSV_TO_JSONL.format(', delimiter="\\t"' if tsv else "", src, dst)
        return f"{'TSV' if tsv else 'CSV'}, not JSONL; {_JSONL}: convert it with {fix}"
    return None


def json_array(path: str) -> str:
    src, dst = _names(path)
    return f"a JSON array, not JSONL; {_JSONL}: convert it with jq -c '.[]' {src} > {dst}"


def _names(path: str) -> tuple[str, str]:
    """The file to convert and the JSONL to write, as they go on a shell line (placeholders for stdin)."""
    if path == "-" or path.endswith((".gz", ".zst")):  # jq and csv read the decompressed bytes only
        return "FILE", "FILE.jsonl"
    stem, ext = os.path.splitext(path)
    return shlex.quote(path), shlex.quote((stem if ext in (".json", ".csv", ".tsv", ".txt") else path) + ".jsonl")
