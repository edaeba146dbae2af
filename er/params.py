"""Parse `NAME[:key=val,...]` specs (for `--reward`, `--estimator`, `--attention`, ...) and bind the
parameters to a class's typed `__init__` keyword arguments, so that the signature IS the parameter list.

    parse_spec("dler:L_T=4000,kappa=0.1")      -> ("dler", {"L_T": "4000", "kappa": "0.1"})
    parse_spec("mypkg.rewards:Mine:alpha=0.5") -> ("mypkg.rewards:Mine", {"alpha": "0.5"})

A user's dotted `module:attr` is recognised by its module part containing a dot or by its second part
having no '='; anything else after the first ':' is parameters.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from er.errors import UsageError


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    name, sep, rest = text.partition(":")
    if not sep:
        return name, {}
    head, sep2, tail = rest.partition(":")
    if "." in name or ("=" not in head and head):
        # module:attr[:params]
        name, rest = f"{name}:{head}", tail
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"{text!r}: parameter {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return name, params


def _convert(raw: Any, annotation: Any, where: str) -> Any:
    """Convert a CLI string to the annotated type: int, float, bool, str, tuples/lists of those, or Optional."""
    if not isinstance(raw, str):
        return raw
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if raw.lower() in ("none", "null", ""):
            return None
        return _convert(raw, inner[0], where)
    if origin in (list, tuple):
        elem = args[0] if args else str
        values = [_convert(v, elem, where) for v in raw.replace(";", "/").split("/") if v]
        return tuple(values) if origin is tuple else values
    try:
        if annotation is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
    except ValueError:
        raise UsageError(f"{where}: expected {getattr(annotation, '__name__', annotation)}, got {raw!r}") from None
    return raw


def bind_params(cls: Any, params: dict[str, Any], what: str) -> Any:
    """Instantiate `cls(**params)` after checking names and converting types from the annotations.

    Unknown keys are usage errors listing the accepted ones; a ValueError raised by the class
    (a bad value such as `L_T=-1`) becomes a usage error naming `what`.
    """
    sig = inspect.signature(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    accepted = [n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kwargs = {}
    for key, raw in params.items():
        if key not in accepted:
            listed = ", ".join(accepted) or "none"
            raise UsageError(f"{what}: unknown parameter {key!r}; parameters: {listed}")
        kwargs[key] = _convert(raw, hints.get(key, str), f"{what}: {key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{what}: {exc}") from None


def describe_params(cls: Any) -> str:
    """`key=default, ...` for --list output."""
    parts = []
    for name, p in inspect.signature(cls).parameters.items():
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            parts.append(name if p.default is p.empty else f"{name}={p.default}")
    return ", ".join(parts)


def check_timeout(timeout: float) -> None:
    """`--timeout` is a positive, finite number of seconds (a negative one would null every row)."""
    if not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout}")
