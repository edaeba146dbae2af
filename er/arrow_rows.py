"""Rows (dicts of Python values) to Arrow record batches.

Two things differ from `pa.RecordBatch.from_pylist`:

- The schema is the union of the fields of the first batch's rows, in order of first appearance
  (`from_pylist` keeps only the first row's keys), each typed from its first non-null values.
- Columns can be built without `pa.array`, whose first call makes pyarrow import pandas: about
  0.25 s of CPU once per process, a tenth of a short command's run. Lists whose values are 1-D numpy
  arrays (token ids) always come from one concatenated buffer and offsets (faster than `pa.array`
  at any size). Booleans, integers, floats and strings (nulls allowed) come from numpy buffers and
  pyarrow's string builder only while `scalars_from_buffers` is asked for: per value that is 2-4x
  slower than `pa.array`'s C++ conversion, so the writer asks for it only in a stream's first rows
  (`SCALAR_BUFFER_ROWS`), where skipping the import saves more than the slower path costs.
  Anything else (nested records, lists of Python values, numpy scalars) goes through `pa.array`.

A value that does not fit the column's type is never coerced silently: the column falls back to
`pa.array`, which raises `ArrowInvalid`/`ArrowTypeError`, re-raised naming the field. Within the rows
that type a field, int and float unify to float64; values of other mixed kinds (a number and a
string) are an error naming the field, never a guess.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

SAMPLE_ROWS = 64  # rows whose values type each field (more are scanned only for all-null fields)
# Rows of a stream whose scalar columns may skip pa.array: past this, the one-time pandas import
# (~0.25 s) costs less than the slower numpy path on every further value.
SCALAR_BUFFER_ROWS = 1 << 16


def infer_schema(rows: list[dict]) -> pa.Schema:
    """Every field of `rows`, typed from its first non-null values."""
    names = dict.fromkeys(key for row in rows for key in row)
    fields = []
    for name in names:
        values = [v for v in (r.get(name) for r in rows[:SAMPLE_ROWS]) if v is not None]
        if not values:
            values = [v for v in (r.get(name) for r in rows) if v is not None][:1]
        try:
            type_ = _simple_type(values) or _pyarrow_type(name, values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            kinds = sorted({type(v).__name__ for v in values})
            raise type(exc)(f"field {name!r} has values of different types ({', '.join(kinds)}): {exc}") from None
        fields.append(pa.field(name, type_))
    return pa.schema(fields)


def with_declared_children(schema: pa.Schema, declared: dict[str, pa.DataType]) -> pa.Schema:
    """`schema` with each struct child that inference left null typed as declared (`policy.step`)."""
    fields = []
    for f in schema:
        if pa.types.is_struct(f.type):
            children = [c.with_type(declared[f"{f.name}.{c.name}"])
                        if pa.types.is_null(c.type) and f"{f.name}.{c.name}" in declared else c for c in f.type]
            f = f.with_type(pa.struct(children))
        fields.append(f)
    return pa.schema(fields)


def column(values: list, type_: pa.DataType, scalars_from_buffers: bool = True) -> pa.Array:
    """One column of a record batch (absent and None values are nulls)."""
    if pa.types.is_list(type_):
        built = _list_of_arrays(values, type_)
    elif scalars_from_buffers:
        built = _scalars(values, type_)
    else:
        built = None
    return built if built is not None else pa.array(values, type=type_)


def _simple_type(values: list) -> pa.DataType | None:
    if not values:
        return pa.null()
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    if kinds == {str}:
        return pa.string()
    if kinds == {np.ndarray}:
        dtypes = {v.dtype for v in values}
        if len(dtypes) == 1 and all(v.ndim == 1 for v in values) and next(iter(dtypes)).kind in "iuf":
            return pa.list_(pa.from_numpy_dtype(next(iter(dtypes))))
    return None


def _pyarrow_type(name: str, values: list) -> pa.DataType:
    return pa.Table.from_pylist([{name: v} for v in values]).schema.field(name).type


_PRIMITIVE_KINDS = {"b": {bool}, "i": {int}, "u": {int}, "f": {int, float}}
_EXACT_INT_IN_DOUBLE = 1 << 53  # pyarrow refuses larger ints in a double column; so do we


def _scalars(values: list, type_: pa.DataType) -> pa.Array | None:
    """A scalar column from numpy buffers, or None where this type or these values need `pa.array`."""
    if pa.types.is_null(type_):
        return pa.nulls(len(values)) if all(v is None for v in values) else None
    if pa.types.is_string(type_):
        if not all(type(v) is str or v is None for v in values):
            return None
        builder = pa.lib.StringBuilder()
        builder.append_values(values)
        return builder.finish()
    if not (pa.types.is_boolean(type_) or pa.types.is_integer(type_) or pa.types.is_float64(type_)):
        return None
    dtype = np.dtype(type_.to_pandas_dtype())
    present = [v is not None for v in values]
    n_null = len(values) - sum(present)
    data = values if n_null == 0 else [v if ok else 0 for v, ok in zip(values, present)]
    kinds = {type(v) for v in data}
    if not kinds <= _PRIMITIVE_KINDS[dtype.kind]:
        return None
    if dtype.kind == "f" and int in kinds and not all(
            -_EXACT_INT_IN_DOUBLE <= v <= _EXACT_INT_IN_DOUBLE for v in data if type(v) is int):
        return None
    try:
        array = np.array(data, dtype=dtype)
    except OverflowError:  # out of the column's range: pa.array reports it
        return None
    validity = None
    if n_null:
        validity = pa.py_buffer(np.packbits(np.array(present, dtype=bool), bitorder="little"))
    if dtype.kind == "b":
        array = np.packbits(array, bitorder="little")
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(array)], null_count=n_null)


def _list_of_arrays(values: list, type_: pa.ListType) -> pa.Array | None:
    """A list column whose every value is a 1-D numpy array: one concatenated buffer and offsets."""
    if not values or not all(type(v) is np.ndarray and v.ndim == 1 for v in values):
        return None
    value_type = type_.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        return None
    dtype = np.dtype(value_type.to_pandas_dtype())
    if not all(np.can_cast(v.dtype, dtype, "safe") for v in values):
        return None
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    if lengths.sum() > np.iinfo(np.int32).max:
        return None  # past 32-bit offsets: pa.array reports it
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(values).astype(dtype, copy=False)
    offsets_array = pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets)])
    flat_array = pa.Array.from_buffers(value_type, len(flat), [None, pa.py_buffer(flat)])
    return pa.ListArray.from_arrays(offsets_array, flat_array, type=type_)


def record_batch(rows: list[dict], schema: pa.Schema, scalars_from_buffers: bool = True) -> Any:
    """The rows as one record batch of `schema` (absent fields are nulls)."""
    columns = []
    for name in schema.names:
        type_ = schema.field(name).type
        try:
            columns.append(column([r.get(name) for r in rows], type_, scalars_from_buffers))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise type(exc)(f"field {name!r} does not fit its column type {type_}: {exc}") from None
    return pa.RecordBatch.from_arrays(columns, schema=schema)
