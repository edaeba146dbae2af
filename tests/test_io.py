"""Record streams: formats in and out, bad lines, atomic output, pipes."""

from __future__ import annotations

import gzip
import subprocess

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from er.errors import ErError
from er.io import RecordStream, read_records, write_records
from tests.helpers import ER, jsonl, parse_jsonl, run_er, sample_record

ROWS = [sample_record("g1", 0, 2, reward=1.0), sample_record("g1", 1, 2, reward=0.0)]


def test_jsonl_gzip_zstd_arrow_and_parquet_inputs_read_the_same_records(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(jsonl(ROWS))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(jsonl(ROWS)))
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl(ROWS)))
    table = pa.Table.from_pylist(ROWS)
    with pa.ipc.new_stream(str(tmp_path / "a.arrow"), table.schema) as w:
        w.write_table(table)
    pq.write_table(table, tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "a.arrow", "a.parquet"):
        assert list(read_records([str(tmp_path / name)])) == ROWS, name


def test_arrow_output_round_trips_through_the_next_command(tmp_path):
    arrow = run_er("advantage", "--format", "arrow", input=jsonl(ROWS), check=True).stdout
    assert arrow[:4] == b"\xff\xff\xff\xff"
    out = parse_jsonl(run_er("advantage", "-e", "none", input=arrow, check=True).stdout)
    assert [r["advantage"] for r in out] == [1.0, 0.0]
    assert out[0]["policy"] == {"model": "tiny", "step": 0}


def test_malformed_line_names_source_and_line_and_exits_1(tmp_path):
    data = jsonl(ROWS[:1]) + b"\n" + b'{"broken": \n' + jsonl(ROWS[1:])
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    proc = run_er("advantage", str(path))
    assert proc.returncode == 1
    assert f"{path}:3: malformed JSON" in proc.stderr.decode()
    assert proc.stderr.decode().count("\n") == 1  # one line, no traceback


def test_rejects_file_keeps_bad_rows_and_counts_add_up(tmp_path):
    rejects = tmp_path / "rej.jsonl"
    data = jsonl(ROWS[:1]) + b"not json\n" + b"[1, 2]\n" + b"\xff\xfe{}\n" + jsonl(ROWS[1:])
    proc = run_er("advantage", "-e", "none", "--rejects", str(rejects), input=data, check=True)
    assert len(parse_jsonl(proc.stdout)) == 2
    bad = parse_jsonl(rejects.read_bytes())
    assert [b["line"] for b in bad] == [2, 3, 4]
    assert "not valid UTF-8" in bad[2]["error"] or "malformed" in bad[2]["error"]
    assert "5 in, 2 out, 3 rejected" in proc.stderr.decode()


def test_empty_input_gives_empty_output_and_exit_0():
    proc = run_er("advantage", input=b"")
    assert proc.returncode == 0 and proc.stdout == b""
    assert "0 in, 0 out, 0 rejected" in proc.stderr.decode()


def test_blank_lines_are_not_rows():
    proc = run_er("advantage", "-e", "none", input=b"\n" + jsonl(ROWS) + b"\n\n", check=True)
    assert len(parse_jsonl(proc.stdout)) == 2


def test_a_line_over_max_line_bytes_is_rejected_with_its_size(tmp_path):
    big = orjson.dumps(sample_record("g2", 0, 1, reward=1.0, pad="x" * 5000)) + b"\n"
    proc = run_er("advantage", "--max-line-bytes", "1000", input=jsonl(ROWS) + big)
    assert proc.returncode == 1
    assert "<stdin>:3: line of 5" in proc.stderr.decode() and "over --max-line-bytes 1000" in proc.stderr.decode()


def test_a_50mb_line_is_processed(tmp_path):
    big = sample_record("g2", 0, 1, reward=1.0, pad="x" * 50_000_000)
    proc = run_er("advantage", "-e", "none", input=jsonl([big]), check=True)
    assert orjson.loads(proc.stdout)["advantage"] == 1.0


def test_output_file_is_written_atomically_and_not_left_behind_on_error(tmp_path):
    out = tmp_path / "out.jsonl"
    run_er("advantage", "-e", "none", "-o", str(out), input=jsonl(ROWS), check=True)
    assert len(parse_jsonl(out.read_bytes())) == 2
    bad = tmp_path / "bad.jsonl"
    proc = run_er("advantage", "-o", str(bad), input=jsonl(ROWS) + b"{oops\n")
    assert proc.returncode == 1
    assert not bad.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".er-")] == []


def test_unwritable_output_is_a_one_line_usage_error(tmp_path):
    proc = run_er("advantage", "-o", str(tmp_path / "missing-dir" / "x.jsonl"), input=jsonl(ROWS))
    assert proc.returncode == 2 and "cannot write here" in proc.stderr.decode()


def test_missing_input_file_is_a_usage_error():
    proc = run_er("advantage", "/nonexistent.jsonl")
    assert proc.returncode == 2 and "/nonexistent.jsonl: no such file" in proc.stderr.decode()


def test_closed_downstream_pipe_ends_quietly_with_status_0(tmp_path):
    rows = [sample_record(f"g{i}", 0, 1, reward=1.0) for i in range(20000)]
    path = tmp_path / "many.jsonl"
    path.write_bytes(jsonl(rows))
    cmd = " ".join(ER) + f" advantage -e none {path} | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and len(proc.stdout.splitlines()) == 1


def test_library_reader_raises_located_errors(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2\n')
    with pytest.raises(ErError) as info:
        list(read_records([str(path)]))
    assert str(info.value).startswith(f"{path}:2: malformed JSON")


def test_write_records_to_a_file(tmp_path):
    n = write_records(ROWS, str(tmp_path / "w.jsonl"))
    assert n == 2 and list(read_records([str(tmp_path / "w.jsonl")])) == ROWS


def test_truncated_arrow_stream_is_reported_not_silently_short(tmp_path):
    table = pa.Table.from_pylist(ROWS * 50)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    data = sink.getvalue().to_pybytes()
    proc = run_er("advantage", "-e", "none", input=data[: len(data) // 2])
    assert proc.returncode == 1 and "Arrow stream cut short" in proc.stderr.decode()


def test_summary_counts_hold_in_equals_out_plus_rejected():
    stream = RecordStream("t", quiet=True)
    assert stream.summary() == "er t: 0 in, 0 out, 0 rejected"
