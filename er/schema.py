"""Record kinds and their JSON Schemas (schemas/*.json, the source of truth, shipped as `er.schemas`).

`check_required` is the cheap per-row check the commands run on their hot path (presence and type
of the fields the stage reads); `validator(kind)` is the full JSON Schema check used by
`er validate` and the contract tests; `arrow_schema(kind)` gives Arrow types for declared fields.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from er.errors import ErError, UnknownNameError


def kinds() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("er.schemas").iterdir() if p.name.endswith(".json"))


@functools.cache
def load_schema(kind: str) -> dict:
    known = kinds()
    if kind not in known:
        raise UnknownNameError("record kind", kind, known)
    return json.loads(resources.files("er.schemas").joinpath(f"{kind}.json").read_text())


def schema_text(kind: str) -> str:
    load_schema(kind)
    return resources.files("er.schemas").joinpath(f"{kind}.json").read_text()


@functools.cache
def validator(kind: str):
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(kind))


def errors(record: Any, kind: str) -> list[str]:
    """Every schema violation of one record, as short messages naming the field."""
    out = []
    for err in sorted(validator(kind).iter_errors(record), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path)
        out.append(f"{where}: {err.message}" if where else err.message)
    return out


_PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


def check_required(record: dict, fields: dict[str, str | tuple[str, ...]]) -> None:
    """Cheap check of the fields a stage reads: `{"completion": "string", "reward": ("number", "null")}`.

    Raises ErError naming the first missing or mistyped field. bool is not accepted as a number.
    """
    for name, types in fields.items():
        if name not in record:
            raise ErError(f"missing field {name!r}")
        value = record[name]
        allowed = (types,) if isinstance(types, str) else types
        if value is None:
            if "null" in allowed:
                continue
            raise ErError(f"field {name!r} is null")
        for t in allowed:
            if t == "null":
                continue
            if isinstance(value, _PY_TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool)):
                break
        else:
            raise ErError(f"field {name!r} should be {' or '.join(allowed)}, got {type(value).__name__}")


@functools.cache
def fields_added(before: str, after: str) -> frozenset[str]:
    """Fields the stages from kind `before` to kind `after` add, from the schemas: `("sample",
    "advantaged")` is `rewards`, `reward`, `correct`, `advantage`, `estimator`. `er sample` leaves
    those out of what it copies from a prompt, so a verdict or reward carried by a prompt never
    passes for one about the new completion; `er validate --kind prompt --for score:...` does not
    ask a prompt for what `er sample` will add."""
    return frozenset(load_schema(after).get("properties", {})) - frozenset(load_schema(before).get("properties", {}))


def check_correct(record: dict) -> None:
    """A `correct` carried by a record must be true, false or null (a string "false" is not false)."""
    value = record.get("correct")
    if value is not None and type(value) is not bool:
        raise ErError(f"field 'correct' should be true, false or null, got {type(value).__name__} {value!r}")


_ARROW_TYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool_"}


def _arrow_type(prop: dict):
    """The Arrow type of a scalar (or list of numbers) JSON Schema property; None for anything else."""
    import pyarrow as pa

    t = prop.get("type")
    types = [t] if isinstance(t, str) else list(t or [])
    scalar = [x for x in types if x != "null"]
    if len(scalar) == 1 and scalar[0] in _ARROW_TYPES:
        return getattr(pa, _ARROW_TYPES[scalar[0]])()
    if scalar == ["array"] and prop.get("items", {}).get("type") in ("integer", "number"):
        return pa.list_(getattr(pa, _ARROW_TYPES[prop["items"]["type"]])())
    return None


def arrow_schema(kind: str):
    """Arrow types for the scalar fields the schema declares (nested fields are left to inference)."""
    import pyarrow as pa

    fields = []
    for name, prop in load_schema(kind).get("properties", {}).items():
        type_ = _arrow_type(prop)
        if type_ is not None:
            fields.append(pa.field(name, type_))
    return pa.schema(fields)


def arrow_nested_types(kind: str) -> dict[str, Any]:
    """Declared Arrow types of the scalar fields inside objects, by dotted path (`policy.step`: int64):
    they type a nested field that is null in an Arrow stream's first batch, where inference cannot."""
    out = {}
    for name, prop in load_schema(kind).get("properties", {}).items():
        for child, child_prop in (prop.get("properties") or {}).items():
            type_ = _arrow_type(child_prop)
            if type_ is not None:
                out[f"{name}.{child}"] = type_
    return out
