"""Outputs other tools open: `-o x.arrow`/`x.feather` are Arrow IPC files, `x.parquet` Parquet; stdout stays a stream."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from er.io import ARROW_FIRST_ROWS, ARROW_MAX_ROWS, RecordWriter
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record

ROWS = [sample_record(f"g{g}", i, 2, reward=float(i), extra={"k": [g, i]}) for g in range(3) for i in range(2)]


def _score(tmp_path, *args):
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(ROWS))
    proc = run_er("score", "-r", "length", "--workers", "0", str(src), *args)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


@pytest.mark.parametrize("name", ["x.arrow", "x.feather", "x.ipc"])
def test_arrow_file_suffixes_write_the_ipc_file_format(tmp_path, name):
    out = tmp_path / name
    _score(tmp_path, "--format", "arrow", "-o", str(out))
    table = pa.ipc.open_file(str(out)).read_all()
    assert table.num_rows == 6 and table.column("group_id").to_pylist()[:2] == ["g0", "g0"]


def test_pandas_and_polars_open_the_arrow_file_and_the_suffix_alone_implies_arrow(tmp_path):
    import pandas as pd
    import polars as pl

    out = tmp_path / "x.feather"
    _score(tmp_path, "-o", str(out))  # no --format: the suffix says it
    assert pd.read_feather(out)["sample_idx"].tolist() == [0, 1] * 3
    frame = pl.read_ipc(out)
    assert frame.height == 6 and frame["extra"].to_list()[1] == {"k": [0, 1]}


def test_stdout_and_arrows_keep_the_stream_format(tmp_path):
    proc = _score(tmp_path, "--format", "arrow")
    assert pa.ipc.open_stream(proc.stdout).read_all().num_rows == 6
    out = tmp_path / "x.arrows"
    _score(tmp_path, "-o", str(out))
    assert pa.ipc.open_stream(out.read_bytes()).read_all().num_rows == 6


def test_parquet_is_read_by_pandas_polars_duckdb_and_datasets(tmp_path):
    import datasets
    import duckdb
    import pandas as pd
    import polars as pl

    out = tmp_path / "x.parquet"
    _score(tmp_path, "-o", str(out))  # -o x.parquet implies --format parquet
    assert len(pd.read_parquet(out)) == 6
    assert pl.read_parquet(out)["sample_idx"].to_list() == [0, 1] * 3
    assert duckdb.sql(f"select count(*), sum(sample_idx) from '{out}'").fetchall() == [(6, 3)]
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert ds.num_rows == 6 and ds[1]["extra"] == {"k": [0, 1]}
    # and er reads back what it wrote
    back = run_er("validate", "--kind", "scored", str(out))
    assert back.returncode == 0, back.stderr.decode()


def test_parquet_is_written_row_group_by_row_group(tmp_path):
    out = tmp_path / "big.parquet"
    writer = RecordWriter(str(out), "parquet")
    for i in range(10_000):
        writer.write({"i": i, "text": "x" * 50})
    writer.close()
    meta = pq.ParquetFile(out).metadata
    groups = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    # one row group per record batch: the first small (written early), none over the batch cap
    assert sum(groups) == 10_000 and groups[0] == ARROW_FIRST_ROWS and max(groups) <= ARROW_MAX_ROWS


def test_parquet_and_arrow_file_outputs_are_all_or_nothing(tmp_path):
    out = tmp_path / "x.parquet"
    src = tmp_path / "bad.jsonl"
    src.write_bytes(jsonl(ROWS) + b"{not json\n")
    proc = run_er("score", "-r", "length", "--workers", "0", str(src), "-o", str(out))
    assert proc.returncode == 1 and not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".er-")] == []


def test_no_rows_still_makes_a_file_the_readers_open(tmp_path):
    out = tmp_path / "empty.parquet"
    proc = run_er("score", "-r", "length", "--workers", "0", "-o", str(out), input=b"")
    assert proc.returncode == 0, proc.stderr.decode()
    assert pq.read_table(out).num_rows == 0


def test_an_unknown_format_is_a_usage_error(tmp_path):
    proc = run_er("score", "-r", "length", "--format", "csv", input=b"")
    assert proc.returncode == 2 and "--format must be jsonl, arrow or parquet" in proc.stderr.decode()
    assert parse_jsonl(b"") == []
