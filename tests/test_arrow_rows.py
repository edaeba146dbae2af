"""Rows to Arrow: the schema of the first batch, columns from numpy buffers that equal pyarrow's own
conversion, the same errors for values that do not fit, and no pandas import for plain columns."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from er import arrow_rows
from er.io import ARROW_BATCH_BYTES, ARROW_FIRST_ROWS, ARROW_MAX_ROWS, RecordWriter


def test_schema_is_the_union_of_the_fields_in_order_of_first_appearance():
    rows = [{"a": 1}, {"b": "x", "a": 2}, {"c": [1.5]}]
    schema = arrow_rows.infer_schema(rows)
    assert schema.names == ["a", "b", "c"]
    assert [str(t) for t in schema.types] == ["int64", "string", "list<item: double>"]


def test_a_field_null_in_the_sample_is_typed_from_its_first_value_later_in_the_batch():
    rows = [{"x": None}] * (arrow_rows.SAMPLE_ROWS + 10) + [{"x": 0.5}]
    assert arrow_rows.infer_schema(rows).field("x").type == pa.float64()
    assert arrow_rows.infer_schema([{"x": None}]).field("x").type == pa.null()


def test_ints_and_floats_together_are_doubles_and_token_arrays_keep_their_dtype():
    schema = arrow_rows.infer_schema([{"r": 1, "ids": np.arange(3, dtype=np.int32)}, {"r": 0.5, "ids": np.arange(2, dtype=np.int32)}])
    assert schema.field("r").type == pa.float64()
    assert schema.field("ids").type == pa.list_(pa.int32())


def test_nested_values_are_typed_by_pyarrow():
    schema = arrow_rows.infer_schema([{"m": {"a": 1, "b": [True]}, "l": [[1, 2], [3]]}])
    assert schema.field("m").type == pa.struct([("a", pa.int64()), ("b", pa.list_(pa.bool_()))])
    assert schema.field("l").type == pa.list_(pa.list_(pa.int64()))


@pytest.mark.parametrize("values, type_", [
    ([True, False, None, True, True, False, True, False, True], pa.bool_()),
    ([1, -2, None, 2**62], pa.int64()),
    ([0, 7, 255], pa.uint8()),
    ([1.5, None, 2, -0.0, float("inf")], pa.float64()),
    (["a", None, "é", ""], pa.string()),
    ([None, None], pa.null()),
    ([np.array([1, 2], np.int32), np.array([], np.int32), np.array([3], np.int32)], pa.list_(pa.int32())),
    ([np.array([1, 2], np.int16), np.array([3], np.int32)], pa.list_(pa.int64())),
    ([np.array([0.5]), np.array([1.0, 2.0])], pa.list_(pa.float64())),
    ([[1, 2], None, [3]], pa.list_(pa.int64())),
    ([{"a": 1}, None], pa.struct([("a", pa.int64())])),
])
def test_every_column_equals_pyarrows_own_conversion(values, type_):
    expected = pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in values], type=type_)
    got = arrow_rows.column(values, type_)
    got.validate(full=True)
    assert got.equals(expected)


@pytest.mark.parametrize("values, type_", [
    (["1", 2], pa.int64()),  # a string in an int column
    ([2**64], pa.int64()),  # out of range
    ([-1], pa.uint8()),
    ([2**60, 0.5], pa.float64()),  # an int a double cannot hold exactly
    ([1, "x"], pa.string()),
])
def test_values_that_do_not_fit_raise_as_pyarrow_does(values, type_):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError)):
        pa.array(values, type=type_)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError)):
        arrow_rows.column(values, type_)


def test_arrays_that_cannot_be_cast_safely_are_left_to_pyarrow():
    values = [np.array([1.5, 2.0])]  # floats into an int32 list: pyarrow's rules, not a silent astype
    assert arrow_rows.column(values, pa.list_(pa.int32())).equals(pa.array(values, type=pa.list_(pa.int32())))


@pytest.mark.skipif(int(pa.__version__.split(".")[0]) < 26,
                    reason="pyarrow < 26 imports pandas itself when it converts lists of numpy arrays "
                           "(mlflow, of the track extra, pins pyarrow < 26)")
def test_plain_columns_do_not_import_pandas():
    code = ("import sys, numpy as np; from er.arrow_rows import infer_schema, record_batch; "
            "rows = [{'id': str(i), 'n': i, 'r': i / 2, 'ok': i % 2 == 0, 'ids': np.arange(i, dtype=np.int32)} "
            "for i in range(300)]; record_batch(rows, infer_schema(rows)); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.strip() == b"False"


def _batches(path) -> list[int]:
    return [b.num_rows for b in pa.ipc.open_stream(str(path))]


def test_writer_sizes_batches_by_bytes_after_a_short_first_batch(tmp_path):
    small, heavy = tmp_path / "small.arrows", tmp_path / "heavy.arrows"  # the stream format
    w = RecordWriter(str(small), "arrow")
    for i in range(20_000):
        w.write({"i": i})
    w.close()
    rows = _batches(small)
    assert rows[0] == ARROW_FIRST_ROWS and max(rows) == ARROW_MAX_ROWS and sum(rows) == 20_000
    w = RecordWriter(str(heavy), "arrow")
    for i in range(400):
        w.write({"i": i, "ids": np.zeros(16_384, np.int32)})  # 64 KB a row
    w.close()
    batches = list(pa.ipc.open_stream(str(heavy)))
    assert sum(b.num_rows for b in batches) == 400 and batches[0].num_rows == ARROW_FIRST_ROWS
    assert len(batches) > 2 and all(b.nbytes <= ARROW_BATCH_BYTES + 65_536 for b in batches[1:])


def test_writer_takes_fields_that_appear_later_in_the_first_batch(tmp_path):
    path = tmp_path / "o.arrows"
    w = RecordWriter(str(path), "arrow")
    w.write({"a": 1})
    w.write({"a": 2, "b": "x"})
    w.close()
    assert pa.ipc.open_stream(str(path)).read_all().to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]
