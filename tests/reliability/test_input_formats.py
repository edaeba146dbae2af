"""Promise: the inputs people have are read, or refused in one line that says how to convert them.

Parquet from a pipe, a FIFO or a redirect (it needs its footer, so it is spooled to a temporary file),
gzip-compressed Parquet, Parquet under any name, a `datasets` `save_to_disk` directory (its shards
in order); a `DatasetDict` directory names the splits to pass instead. A JSON array, a pretty-printed
JSON object and a CSV file stop at line 1 with the command that converts them to JSONL, with or
without `--rejects` (a whole file in another format is not a bad row)."""

from __future__ import annotations

import gzip
import io
import os
import subprocess

import datasets
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import ER, jsonl, parse_jsonl, run_er, sample_record

SCORED = dict(reward=1.0, correct=True, rewards={"math": 1.0})
ROWS = [sample_record(f"g{i}", j, 2, **SCORED) for i in range(5) for j in range(2)]


def parquet_bytes(rows: list[dict]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=3)  # several row groups
    return sink.getvalue()


def one_line(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture(scope="module")
def expected() -> dict[str, list[dict]]:
    """What each command makes of ROWS given as JSONL: the reference for every other format."""
    return {cmd: parse_jsonl(run_er(*args, input=jsonl(ROWS), check=True).stdout)
            for cmd, args in (("score", ("score", "--reward", "length")), ("advantage", ("advantage",)))}


def test_parquet_piped_redirected_or_gzipped_reads_like_the_same_rows_in_jsonl(tmp_path, expected):
    data = parquet_bytes(ROWS)
    # a pipe: `cat x.parquet | er advantage`, `... | er score --reward length`
    assert parse_jsonl(run_er("advantage", input=data, check=True).stdout) == expected["advantage"]
    assert parse_jsonl(run_er("score", "--reward", "length", input=data, check=True).stdout) == expected["score"]
    # a redirect: `er score --reward length < x.parquet` (stdin is a regular file)
    path = tmp_path / "x.parquet"
    path.write_bytes(data)
    with open(path, "rb") as stdin:
        proc = subprocess.run([*ER, "score", "--reward", "length"], stdin=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert parse_jsonl(proc.stdout) == expected["score"]
    # gzip-compressed, from a pipe and by path; and Parquet under a name that does not say so
    (tmp_path / "x.parquet.gz").write_bytes(gzip.compress(data))
    (tmp_path / "rows.bin").write_bytes(data)
    assert parse_jsonl(run_er("advantage", input=gzip.compress(data), check=True).stdout) == expected["advantage"]
    for name in ("x.parquet.gz", "rows.bin"):
        out = run_er("advantage", str(tmp_path / name), check=True).stdout
        assert parse_jsonl(out) == expected["advantage"], name


def test_parquet_through_a_fifo_is_read(tmp_path, expected):
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*ER, "advantage", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with open(fifo, "wb") as w:
            w.write(parquet_bytes(ROWS))
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert parse_jsonl(out) == expected["advantage"]


def test_a_datasets_directory_is_read_shard_by_shard_in_order(tmp_path, expected):
    dataset = datasets.Dataset.from_list(ROWS)
    dataset.save_to_disk(str(tmp_path / "ds"), num_shards=2)
    assert len(list((tmp_path / "ds").glob("data-*.arrow"))) == 2
    proc = run_er("advantage", str(tmp_path / "ds") + "/", check=True)
    assert parse_jsonl(proc.stdout) == expected["advantage"]
    assert f"{len(ROWS)} in, {len(ROWS)} out" in proc.stderr.decode()

    datasets.DatasetDict(train=dataset, test=dataset.select(range(4))).save_to_disk(str(tmp_path / "dd"))
    one_line(run_er("advantage", str(tmp_path / "dd")), 2, "DatasetDict", f"{tmp_path / 'dd'}/train",
             f"{tmp_path / 'dd'}/test")
    assert parse_jsonl(run_er("advantage", str(tmp_path / "dd" / "train"), check=True).stdout) == expected["advantage"]


def test_any_other_directory_says_what_is_accepted(tmp_path):
    one_line(run_er("advantage", str(tmp_path)), 2, f"{tmp_path}: is a directory", "save_to_disk")


JSON_ARRAY = orjson.dumps(ROWS[:2])
PRETTY_ARRAY = orjson.dumps(ROWS[:2], option=orjson.OPT_INDENT_2)
PRETTY_OBJECT = orjson.dumps(ROWS[0], option=orjson.OPT_INDENT_2)
CSV = b'id,prompt,answer\ng1,"what is 2+2, really?",4\n'
ARRAY_FIX, OBJECT_FIX = "jq -c '.[]' {} > {}", "jq -c . {} > {}"
CSV_FIX = "python3 -c 'import csv,json,sys; [print(json.dumps(r)) for r in csv.DictReader(sys.stdin)]' < {} > {}"


@pytest.mark.parametrize("name,content,fix", [
    ("rows.json", JSON_ARRAY, ARRAY_FIX),
    ("rows.json", b"\n" + PRETTY_ARRAY, ARRAY_FIX),
    ("rows.json", PRETTY_OBJECT, OBJECT_FIX),
    ("rows.csv", CSV, CSV_FIX),
    ("rows.txt", CSV, CSV_FIX),  # commas on a line that is not JSON: CSV whatever the name
])
def test_json_arrays_pretty_json_and_csv_stop_at_line_1_with_the_conversion(tmp_path, name, content, fix):
    path = tmp_path / name
    path.write_bytes(content)
    command = fix.format(path, tmp_path / "rows.jsonl")
    line = 2 if content.startswith(b"\n") else 1
    one_line(run_er("score", "--reward", "length", str(path)), 1, f"{path}:{line}:", "JSONL", command)
    # with --rejects too: the whole file is in another format, not one bad row among good ones
    rejects = tmp_path / "rejects.jsonl"
    one_line(run_er("score", "--reward", "length", "--rejects", str(rejects), str(path)), 1, command)
    assert not rejects.exists()
    # from stdin the command names a placeholder
    one_line(run_er("advantage", input=content), 1, "<stdin>:", fix.format("FILE", "FILE.jsonl"))


def test_a_tsv_file_gets_the_tab_separated_conversion(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_bytes(b"id\tprompt\ng1\tq\n")
    one_line(run_er("advantage", str(path)), 1, f"{path}:1:", 'csv.DictReader(sys.stdin, delimiter="\\t")')


def test_a_broken_first_row_of_a_jsonl_file_is_still_one_bad_row(tmp_path):
    """The format hints must not swallow ordinary bad rows: a JSONL file whose first row is broken
    (not a prefix of a multi-line value) is rejected row by row as before."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": 1}}\n' + jsonl(ROWS))
    rejects = tmp_path / "rejects.jsonl"
    proc = run_er("advantage", "--rejects", str(rejects), str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    assert [r["line"] for r in parse_jsonl(rejects.read_bytes())] == [1]
    assert len(parse_jsonl(proc.stdout)) == len(ROWS)


def test_a_utf8_byte_order_mark_before_jsonl_is_read_past_from_a_file_and_from_stdin(tmp_path, expected):
    """Editors on Windows save UTF-8 with a BOM; it is not part of the first row."""
    data = b"\xef\xbb\xbf" + jsonl(ROWS)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    assert parse_jsonl(run_er("advantage", str(path), check=True).stdout) == expected["advantage"]
    assert parse_jsonl(run_er("advantage", input=data, check=True).stdout) == expected["advantage"]
    # and a BOM before a JSON array still gets the conversion hint, not "malformed JSON"
    arr = tmp_path / "rows.json"
    arr.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(ROWS[:2]))
    one_line(run_er("advantage", str(arr)), 1, "jq -c '.[]'")


def arrow_file_bytes(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=3):  # several record batches
            writer.write_batch(batch)
    return sink.getvalue()


def test_an_arrow_ipc_file_reads_like_the_same_rows_in_jsonl_by_path_piped_or_gzipped(tmp_path, expected):
    """The IPC file format keeps its index in a footer: a regular file is memory-mapped and read batch
    by batch, a pipe or a compressed file is spooled first."""
    data = arrow_file_bytes(ROWS)
    assert data[:6] == b"ARROW1"
    path = tmp_path / "rows.arrow"
    path.write_bytes(data)
    zipped = tmp_path / "rows.arrow.gz"
    zipped.write_bytes(gzip.compress(data))
    for args, stdin in (((str(path),), None), ((), data), ((str(zipped),), None)):
        out = run_er("advantage", *args, input=stdin, check=True).stdout
        assert parse_jsonl(out) == expected["advantage"]
    with open(path, "rb") as f:  # stdin redirected from the file
        proc = subprocess.run([*ER, "advantage"], stdin=f, capture_output=True, timeout=120)
    assert proc.returncode == 0 and parse_jsonl(proc.stdout) == expected["advantage"], proc.stderr.decode()


def test_a_cut_arrow_ipc_file_is_one_line_exit_1(tmp_path):
    path = tmp_path / "cut.arrow"
    path.write_bytes(arrow_file_bytes(ROWS)[:-40])  # the footer is gone
    one_line(run_er("advantage", str(path)), 1, "cut.arrow:1:", "Arrow file cut short or invalid")
